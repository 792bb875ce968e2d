package emutest

// matrix.go: the conformance matrix each service package keeps for the AWS
// facts of docs/aws-behaviour.md it implements: cases that run against an
// emulator, and an index of every fact with the tests that pin it down.

import (
	"context"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
)

// Case is one entry of a conformance matrix. World and Opts, when set, give
// the case an emulator of its own; otherwise it shares one with the others.
type Case struct {
	Rule, Name string
	World      func(w *awsemu.World)
	Opts       awsemu.Options
	Own        bool // an emulator of its own even without options
	Run        func(t *testing.T, x *Env)
}

// RunCases runs a matrix, each case as the subtest "RULE NAME".
func RunCases(t *testing.T, cases []Case) {
	shared := NewEnv(t, awsemu.Options{})
	for _, tc := range cases {
		t.Run(tc.Rule+" "+tc.Name, func(t *testing.T) {
			x := &Env{T: t, Ctx: context.Background(), Srv: shared.Srv}
			if tc.Own || tc.World != nil || !reflect.DeepEqual(tc.Opts, awsemu.Options{}) {
				opts := tc.Opts
				if tc.World != nil {
					opts.World = DefaultWorldWith(t, tc.World)
				}
				x = NewEnv(t, opts)
			}
			tc.Run(t, x)
		})
	}
}

// DefaultWorldWith is the default world changed by edit.
func DefaultWorldWith(t *testing.T, edit func(w *awsemu.World)) *awsemu.World {
	t.Helper()
	w, err := awsemu.DefaultWorld()
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(w)
	}
	return w
}

// AddUser adds an IAM user to an account of w.
func AddUser(w *awsemu.World, account string, u awsemu.WorldUser) {
	for i := range w.Accounts {
		if w.Accounts[i].ID == account {
			w.Accounts[i].Users = append(w.Accounts[i].Users, u)
		}
	}
}

// Fact is one fact of docs/aws-behaviour.md and the tests that cover it:
// test function names of this package, "TestRulesMatrix/RULE_NAME" for a
// matrix case.
type Fact struct {
	Rule, Fact string
	Tests      []string
}

// CheckIndex fails when an index names a test function that does not exist
// in the calling package's test files, or a matrix case that does not
// exist, so the index can't rot silently.
func CheckIndex(t *testing.T, index []Fact, cases []Case) {
	t.Helper()
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	funcs := map[string]bool{}
	fset := token.NewFileSet()
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		file, err := parser.ParseFile(fset, f, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for name, obj := range file.Scope.Objects {
			if obj.Kind.String() == "func" {
				funcs[name] = true
			}
		}
	}
	matrix := map[string]bool{}
	for _, c := range cases {
		matrix[strings.ReplaceAll(c.Rule+" "+c.Name, " ", "_")] = true
	}
	for _, r := range index {
		if len(r.Tests) == 0 {
			t.Errorf("rule %s %q: no test covers it", r.Rule, r.Fact)
		}
		for _, name := range r.Tests {
			top, sub, _ := strings.Cut(name, "/")
			if !funcs[top] {
				t.Errorf("rule %s %q: test %s does not exist", r.Rule, r.Fact, top)
			}
			if top == "TestRulesMatrix" && !matrix[sub] {
				t.Errorf("rule %s %q: TestRulesMatrix has no case %s", r.Rule, r.Fact, sub)
			}
		}
	}
}
