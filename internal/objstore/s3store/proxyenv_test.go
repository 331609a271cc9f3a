package s3store

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/kwick/kwickmig/internal/faultproxy"
	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/objstore"
)

// TestProxyFromEnvironment: HTTP_PROXY / NO_PROXY apply to both PUT paths
// (they share the SDK's transport). The endpoint's host name does not
// resolve, so only a request sent through the proxy can succeed. net/http
// reads the proxy variables once per process: each case runs in a child
// process of the test binary.
func TestProxyFromEnvironment(t *testing.T) {
	if os.Getenv("KWICKMIG_PROXY_CHILD") != "" {
		proxyChild(t)
		return
	}
	e := kmtest.S3(t)
	proxy, err := faultproxy.New(e.Endpoint, faultproxy.Faults{})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	port := e.Endpoint[strings.LastIndex(e.Endpoint, ":")+1:]
	for _, tc := range []struct {
		name, noProxy string
	}{{"through the proxy", ""}, {"NO_PROXY", "s3.kwickmig.invalid"}} {
		t.Run(tc.name, func(t *testing.T) {
			before := proxy.Requests.Load()
			cmd := exec.Command(os.Args[0], "-test.run", "^TestProxyFromEnvironment$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(),
				"KWICKMIG_PROXY_CHILD=1", "KWICKMIG_PROXY_CHILD_EXPECT="+map[bool]string{true: "ok", false: "unreachable"}[tc.noProxy == ""],
				"KWICKMIG_PROXY_CHILD_URL=http://s3.kwickmig.invalid:"+port, "KWICKMIG_PROXY_CHILD_BUCKET="+e.Bucket,
				"HTTP_PROXY="+proxy.URL, "http_proxy="+proxy.URL, "NO_PROXY="+tc.noProxy, "no_proxy="+tc.noProxy,
				"AWS_ACCESS_KEY_ID="+e.AccessKey, "AWS_SECRET_ACCESS_KEY="+e.SecretKey, "AWS_REGION="+e.Region,
				"AWS_CONFIG_FILE="+os.DevNull, "AWS_SHARED_CREDENTIALS_FILE="+os.DevNull, "AWS_EC2_METADATA_DISABLED=true")
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "--- PASS: TestProxyFromEnvironment") {
				t.Fatalf("child: %v\n%s", err, out)
			}
			n := proxy.Requests.Load() - before
			if (tc.noProxy == "") != (n > 0) {
				t.Fatalf("%d requests went through the proxy\n%s", n, out)
			}
		})
	}
}

func proxyChild(t *testing.T) {
	ctx := context.Background()
	for _, disable := range []bool{false, true} {
		st, err := New(ctx, Options{URL: "s3://" + os.Getenv("KWICKMIG_PROXY_CHILD_BUCKET"),
			EndpointURL: os.Getenv("KWICKMIG_PROXY_CHILD_URL"), DisableFastPut: disable})
		if err != nil {
			t.Fatal(err)
		}
		_, err = st.Put(ctx, "via-proxy", strings.NewReader("abc"), 3, objstore.PutOptions{})
		switch os.Getenv("KWICKMIG_PROXY_CHILD_EXPECT") {
		case "ok":
			if err != nil {
				t.Fatalf("put (sdk=%v) through HTTP_PROXY: %v", disable, err)
			}
		default:
			// Sent directly: the host name does not resolve.
			if !errors.Is(err, objstore.ErrUnreachable) {
				t.Fatalf("put (sdk=%v) bypassing the proxy: %v, want unreachable", disable, err)
			}
		}
	}
}
