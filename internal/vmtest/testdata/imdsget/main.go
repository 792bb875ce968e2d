// Command imdsget runs inside a vmtest guest: it reads the instance ID from
// IMDSv2 with Go's net/http, as the agent will, and reports it on stdout.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := instanceID(ctx, "http://169.254.169.254")
	if err != nil {
		fmt.Printf("VMTEST go.error=%v\n", err)
		os.Exit(1)
	}
	fmt.Printf("VMTEST go.instance_id=%s\n", id)
}

func instanceID(ctx context.Context, imds string) (string, error) {
	token, err := call(ctx, http.MethodPut, imds+"/latest/api/token", "X-aws-ec2-metadata-token-ttl-seconds", "21600")
	if err != nil {
		return "", err
	}
	return call(ctx, http.MethodGet, imds+"/latest/meta-data/instance-id", "X-aws-ec2-metadata-token", token)
}

func call(ctx context.Context, method, url, header, value string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set(header, value)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s %s: %s", method, url, resp.Status)
	}
	return string(body), nil
}
