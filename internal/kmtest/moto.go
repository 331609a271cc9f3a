package kmtest

import (
	"os"
	"testing"
)

// Moto points the AWS SDK's default configuration at the harness's
// moto_server for the rest of the test (t.Setenv), through the standard
// per-service endpoint variables a user would set, with fixed credentials
// and region. It returns the endpoint.
func Moto(t *testing.T) string {
	t.Helper()
	ep := Env(t, "KWICKMIG_TEST_MOTO_ENDPOINT")
	t.Setenv("AWS_ENDPOINT_URL_SSM", ep)
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", ep)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDMOTOTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "moto-secret")
	t.Setenv("AWS_REGION", "eu-north-1")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return ep
}
