package secrets

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/testenv"
)

// motoClients points the SDK at moto and returns clients to seed it.
func motoClients(t *testing.T) (*ssm.Client, *secretsmanager.Client) {
	t.Helper()
	kmtest.Moto(t)
	cfg, err := LoadConfig(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return ssm.NewFromConfig(cfg), secretsmanager.NewFromConfig(cfg)
}

func putParam(t *testing.T, c *ssm.Client, name, value string) {
	t.Helper()
	_, err := c.PutParameter(context.Background(), &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String(value),
		Type: ssmtypes.ParameterTypeSecureString, Overwrite: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
}

func putSecret(t *testing.T, c *secretsmanager.Client, name, value string) {
	t.Helper()
	_, err := c.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(value)})
	if err != nil {
		t.Fatal(err)
	}
}

func TestResolveParameterStoreSecureString(t *testing.T) {
	p, _ := motoClients(t)
	name := "/" + kmtest.RandName("prod") + "/receipts/source"
	want := "postgres://kwickmig:s3cr%40t@old-db:5432/receipts?sslmode=require"
	putParam(t, p, name, want)
	// Without decryption moto returns the value KMS-wrapped, as AWS would
	// return ciphertext: the resolver must ask for decryption.
	raw, err := p.GetParameter(context.Background(), &ssm.GetParameterInput{Name: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	if *raw.Parameter.Value == want {
		t.Fatalf("moto returned the SecureString in clear without WithDecryption; the test could not tell")
	}
	got, err := Resolve(context.Background(), "ssm:"+name, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	// Parameters after '?' are added to the stored URL.
	got, err = Resolve(context.Background(), "ssm:"+name+"?sslmode=verify-full&application_name=km", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "sslmode=verify-full") || strings.Contains(got, "sslmode=require") || !strings.Contains(got, "application_name=km") {
		t.Fatalf("params not merged: %q", got)
	}
}

func TestResolveSecretsManager(t *testing.T) {
	_, sm := motoClients(t)
	base := kmtest.RandName("kwickmig-")
	cases := []struct {
		name, value, suffix, want, wantErr string
	}{
		{"plain", "host=old-db user=kwickmig password='p w' dbname=receipts", "", "host=old-db user=kwickmig password='p w' dbname=receipts", ""},
		{"plain-params", "host=old-db user=kwickmig dbname=receipts", "?sslmode=verify-full", "host=old-db user=kwickmig dbname=receipts sslmode=verify-full", ""},
		{"rds", `{"username":"kwickmig","password":"p@ss:w/rd","engine":"postgres","host":"aurora.example","port":5432,"dbname":"receipts","dbClusterIdentifier":"c1"}`, "",
			"postgres://kwickmig:p%40ss%3Aw%2Frd@aurora.example:5432/receipts", ""},
		{"rds-string-port", `{"username":"u","password":"p","host":"h","port":"6432","dbname":"d"}`, "?sslmode=require", "postgres://u:p@h:6432/d?sslmode=require", ""},
		// An RDS-managed master secret holds only the user and password.
		{"managed-master", `{"username":"postgres","password":"Xy"}`, "?host=aurora.example&dbname=receipts&sslmode=verify-full",
			"postgres://postgres:Xy@aurora.example/receipts?sslmode=verify-full", ""},
		{"managed-master-no-host", `{"username":"postgres","password":"Xy"}`, "", "", "the secret has no host"},
		{"mysql", `{"username":"u","password":"p","host":"h","engine":"mysql"}`, "", "", `engine "mysql"`},
		{"bad-json", `{"username":"u","password":"topsecret"`, "", "", "does not parse"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := base + "/" + c.name
			putSecret(t, sm, name, c.value)
			got, err := Resolve(context.Background(), "secretsmanager:"+name+c.suffix, Options{})
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), "secretsmanager:"+name) {
					t.Fatalf("err = %v, want one naming the reference and %q", err, c.wantErr)
				}
				if strings.Contains(err.Error(), "topsecret") || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error leaks the value or is not one line: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestResolveNotFound(t *testing.T) {
	motoClients(t)
	for ref, want := range map[string]string{
		"ssm:/no/such/parameter":        "ssm:/no/such/parameter: parameter not found (region eu-north-1)",
		"secretsmanager:no-such-secret": "secretsmanager:no-such-secret: secret not found (region eu-north-1)",
	} {
		_, err := Resolve(context.Background(), ref, Options{})
		if err == nil || err.Error() != want {
			t.Errorf("%s: err = %v, want %q", ref, err, want)
		}
	}
}

func TestResolveUnreachable(t *testing.T) {
	motoClients(t)
	// Nothing listens: refused at once, every retry.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	t.Setenv("AWS_ENDPOINT_URL_SSM", closed)
	_, err = Resolve(context.Background(), "ssm:/x", Options{})
	if err == nil || !strings.Contains(err.Error(), "ssm:/x: cannot reach "+closed) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v", err)
	}

	// A peer that accepts and never answers: the timeout ends the wait.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://"+silent.Addr().String())
	start := time.Now()
	_, err = Resolve(context.Background(), "secretsmanager:x", Options{Timeout: 2 * time.Second})
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("took %s with a 2s timeout", took)
	}
	if err == nil || !strings.Contains(err.Error(), "secretsmanager:x: no answer from http://"+silent.Addr().String()) || !strings.Contains(err.Error(), "within 2s") {
		t.Fatalf("err = %v", err)
	}
}

// TestResolveMotoStopped resolves from a moto of its own, stops it, and
// resolves again: one line naming the reference and the endpoint, within
// a bound.
func TestResolveMotoStopped(t *testing.T) {
	motoClients(t) // credentials and region; skips (or fails) without the harness
	m, err := testenv.StartMoto(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	t.Setenv("AWS_ENDPOINT_URL_SSM", m.Endpoint)
	cfg, err := LoadConfig(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	putParam(t, ssm.NewFromConfig(cfg), "/stopped/source", "postgres://u:pw@h/db")
	if _, err := Resolve(context.Background(), "ssm:/stopped/source", Options{}); err != nil {
		t.Fatal(err)
	}
	m.Stop()
	start := time.Now()
	_, err = Resolve(context.Background(), "ssm:/stopped/source", Options{})
	took := time.Since(start)
	t.Logf("failed after %s", took)
	if took > 10*time.Second {
		t.Fatalf("took %s", took)
	}
	if err == nil || !strings.HasPrefix(err.Error(), "ssm:/stopped/source: cannot reach "+m.Endpoint+": ") {
		t.Fatalf("err = %v", err)
	}
}
