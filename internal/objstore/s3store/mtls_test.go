package s3store

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/testenv"
)

// TestClientCertificate: --client-cert reaches both PUT paths, and an
// endpoint that requires a certificate we do not send is fatal at once.
// versitygw has no mutual TLS, so the endpoint is a TLS server that only
// checks the certificate and accepts the PUT.
func TestClientCertificate(t *testing.T) {
	var withCert, requests atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		if len(r.TLS.PeerCertificates) > 0 {
			withCert.Add(1)
		}
		w.Header().Set("ETag", `"e"`)
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	dir := t.TempDir()
	caFile := filepath.Join(dir, "server-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	client, err := testenv.NewTestCA(dir) // any certificate will do as ours
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "AK")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "SK")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	ctx := context.Background()
	for _, mode := range putModes {
		o := Options{URL: "s3://b", EndpointURL: srv.URL, CABundle: caFile, DisableFastPut: mode.disable}
		with := o
		with.ClientCert, with.ClientKey = client.CertFile, client.KeyFile
		st, err := New(ctx, with)
		if err != nil {
			t.Fatal(err)
		}
		before := withCert.Load()
		if _, err := st.Put(ctx, "k", strings.NewReader("abc"), 3, objstore.PutOptions{}); err != nil {
			t.Fatalf("%s: put with a client certificate: %v", mode.name, err)
		}
		if withCert.Load() != before+1 {
			t.Fatalf("%s: the server saw no client certificate", mode.name)
		}
		st, err = New(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		before = requests.Load()
		_, err = st.Put(ctx, "k", strings.NewReader("abc"), 3, objstore.PutOptions{})
		if !errors.Is(err, objstore.ErrFatal) || !strings.Contains(fmt.Sprint(err), "certificate required") {
			t.Fatalf("%s: put without the required certificate: %v, want a fatal TLS alert", mode.name, err)
		}
		if requests.Load() != before {
			t.Fatalf("%s: a request without a certificate was served", mode.name)
		}
	}
}
