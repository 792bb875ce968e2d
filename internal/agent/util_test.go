package agent_test

import (
	"crypto/sha256"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/command"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/command/commandtest"
	"io"
	"log/slog"
)

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

func slogJSON(w io.Writer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }

// cmdImport is a token import as an outsider would run it.
func cmdImport(dev, token string) command.Cmd {
	return command.Cmd{Name: "cryptsetup", Args: []string{"token", "import", "--token-id", "0", "--token-replace", dev}, Stdin: []byte(token)}
}

func commandFailure(match string, code int) commandtest.Failure {
	return commandtest.Failure{Match: match, Code: code, Stderr: "injected failure", Times: 1}
}
