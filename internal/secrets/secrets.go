// Package secrets turns a secret reference given where kwickmig expects a
// connection string into that connection string:
//
//	ssm:NAME             an AWS Systems Manager Parameter Store parameter
//	                     (String or SecureString, decrypted) holding a
//	                     connection string
//	secretsmanager:NAME  an AWS Secrets Manager secret holding a connection
//	                     string, or the JSON RDS and Aurora keep for managed
//	                     credentials ({"username","password","host","port",
//	                     "dbname","engine",…})
//
// Either may end in ?key=value&… : libpq parameters added to (or replacing
// those of) the stored connection string, e.g.
// secretsmanager:rds!cluster-abc?host=aurora.example&dbname=receipts&sslmode=verify-full
// for an RDS-managed master secret that holds only a user name and password.
//
// The AWS SDK's default configuration applies: credentials chain, region,
// profile, and the per-service endpoint variables AWS_ENDPOINT_URL_SSM and
// AWS_ENDPOINT_URL_SECRETS_MANAGER (or AWS_ENDPOINT_URL). Errors name the
// reference and never contain the value.
package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
)

const (
	prefixSSM = "ssm:"
	prefixSM  = "secretsmanager:"
)

// DefaultTimeout bounds one resolution (configuration, credentials, every
// retry of the request): a silent endpoint ends the command, never hangs it.
const DefaultTimeout = 30 * time.Second

// Options say which AWS account and region to ask.
type Options struct {
	Region  string // --region; empty: the SDK's (AWS_REGION, the profile)
	Profile string // --profile; empty: the SDK's (AWS_PROFILE, default)
	// Timeout bounds one Resolve call (0: DefaultTimeout).
	Timeout time.Duration
}

// IsReference reports whether s is a secret reference rather than a
// connection string.
func IsReference(s string) bool {
	return strings.HasPrefix(s, prefixSSM) || strings.HasPrefix(s, prefixSM)
}

// Resolve returns the connection string ref names. A string that is not a
// reference is returned as it is. The error is one line naming ref and the
// cause.
func Resolve(ctx context.Context, ref string, o Options) (string, error) {
	if !IsReference(ref) {
		return ref, nil
	}
	r, err := parseRef(ref)
	if err != nil {
		return "", fmt.Errorf("%s: %w", ref, err)
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cfg, err := LoadConfig(ctx, o)
	if err != nil {
		return "", fmt.Errorf("%s: AWS configuration: %s", ref, oneLine(err.Error()))
	}
	if cfg.Region == "" {
		return "", fmt.Errorf("%s: no AWS region (give --region or set AWS_REGION)", ref)
	}
	var value, endpoint string
	if r.service == prefixSSM {
		c := ssm.NewFromConfig(cfg)
		endpoint = endpointOf(c.Options().BaseEndpoint, "ssm", cfg.Region)
		value, err = getParameter(ctx, c, r.name)
	} else {
		c := secretsmanager.NewFromConfig(cfg)
		endpoint = endpointOf(c.Options().BaseEndpoint, "secretsmanager", cfg.Region)
		value, err = getSecret(ctx, c, r.name)
	}
	if err != nil {
		return "", fmt.Errorf("%s: %s", ref, describe(ctx, err, cfg.Region, endpoint, timeout))
	}
	conn, err := toConnString(strings.TrimSpace(value), r.params)
	if err != nil {
		return "", fmt.Errorf("%s: %w", ref, err)
	}
	return conn, nil
}

// reference is a parsed ssm:NAME?params or secretsmanager:NAME?params.
type reference struct {
	service string // prefixSSM or prefixSM
	name    string
	params  url.Values
}

func parseRef(ref string) (reference, error) {
	r := reference{service: prefixSSM}
	rest := strings.TrimPrefix(ref, prefixSSM)
	if strings.HasPrefix(ref, prefixSM) {
		r.service, rest = prefixSM, strings.TrimPrefix(ref, prefixSM)
	}
	r.name = rest
	// Parameter and secret names cannot contain '?': what follows it is
	// connection parameters.
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		r.name = rest[:i]
		q, err := url.ParseQuery(rest[i+1:])
		if err != nil {
			return r, fmt.Errorf("invalid parameters after '?': %s", oneLine(err.Error()))
		}
		r.params = q
	}
	if r.name == "" {
		return r, errors.New("no name after the prefix (want ssm:NAME or secretsmanager:NAME)")
	}
	return r, nil
}

// LoadConfig loads the SDK's default configuration with o's region and
// profile, and an HTTP client whose every wait has an end.
func LoadConfig(ctx context.Context, o Options) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if o.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(o.Profile))
	}
	opts = append(opts, config.WithHTTPClient(awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = 10 * time.Second }).
		WithTransportOptions(func(t *http.Transport) {
			t.TLSHandshakeTimeout = 10 * time.Second
			t.ResponseHeaderTimeout = 15 * time.Second
		})))
	// No SDK warnings on stderr (see s3store): the error names the cause.
	opts = append(opts, config.WithLogger(logging.Nop{}))
	return config.LoadDefaultConfig(ctx, opts...)
}

// endpointOf names the endpoint a client sends to, for error messages:
// the configured one (AWS_ENDPOINT_URL_SSM, …), else the region's standard
// endpoint.
func endpointOf(base *string, service, region string) string {
	if base != nil && *base != "" {
		return *base
	}
	return "https://" + service + "." + region + ".amazonaws.com"
}

func getParameter(ctx context.Context, c *ssm.Client, name string) (string, error) {
	out, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
	if err != nil {
		return "", err
	}
	if out.Parameter == nil || out.Parameter.Value == nil {
		return "", errors.New("the parameter has no value")
	}
	return *out.Parameter.Value, nil
}

func getSecret(ctx context.Context, c *secretsmanager.Client, name string) (string, error) {
	out, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
	if err != nil {
		return "", err
	}
	if out.SecretString == nil {
		return "", errors.New("the secret has no string value (a binary secret cannot hold a connection string)")
	}
	return *out.SecretString, nil
}

// describe turns an SDK error into a short cause: not found, access denied,
// no answer within the timeout, or the service's own message.
func describe(ctx context.Context, err error, region, endpoint string, timeout time.Duration) string {
	var pnf *ssmtypes.ParameterNotFound
	var rnf *smtypes.ResourceNotFoundException
	var api smithy.APIError
	switch {
	case errors.As(err, &pnf):
		return fmt.Sprintf("parameter not found (region %s)", region)
	case errors.As(err, &rnf):
		return fmt.Sprintf("secret not found (region %s)", region)
	case errors.As(err, &api) && strings.Contains(api.ErrorCode(), "AccessDenied"):
		return "access denied: " + oneLine(api.ErrorMessage())
	case errors.As(err, &api):
		return api.ErrorCode() + ": " + oneLine(api.ErrorMessage())
	}
	if ctx.Err() != nil {
		return fmt.Sprintf("no answer from %s within %s", endpoint, timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Sprintf("cannot reach %s: %s", endpoint, oneLine(ue.Err.Error()))
	}
	return oneLine(err.Error())
}

// toConnString makes a connection string of a stored value: a connection
// string as it is, or the RDS managed-credentials JSON as a postgres:// URL;
// then params are added, replacing any the value sets.
func toConnString(value string, params url.Values) (string, error) {
	if strings.HasPrefix(value, "{") {
		return fromJSON(value, params)
	}
	if value == "" {
		return "", errors.New("the stored value is empty")
	}
	if len(params) == 0 {
		return value, nil
	}
	if strings.HasPrefix(value, "postgres://") || strings.HasPrefix(value, "postgresql://") {
		u, err := url.Parse(value)
		if err != nil {
			// Not quoted: the parse error would show the value.
			return "", errors.New("the stored connection URL does not parse")
		}
		q := u.Query()
		for k, v := range params {
			q[k] = v
		}
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	out := value
	for _, k := range sortedKeys(params) {
		out += " " + k + "=" + quoteKV(params.Get(k))
	}
	return out, nil
}

// rdsSecret is the JSON RDS and Aurora keep for managed credentials. Port
// is a number there, a string in some hand-made secrets.
type rdsSecret struct {
	Username string          `json:"username"`
	Password string          `json:"password"`
	Host     string          `json:"host"`
	Port     json.RawMessage `json:"port"`
	DBName   string          `json:"dbname"`
	Engine   string          `json:"engine"`
}

func fromJSON(value string, params url.Values) (string, error) {
	var s rdsSecret
	if err := json.Unmarshal([]byte(value), &s); err != nil {
		// json's message can quote the value: say only where it broke.
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return "", fmt.Errorf("the secret's JSON does not parse (at byte %d)", se.Offset)
		}
		return "", errors.New("the secret's JSON has an unexpected shape (want username, password, host, port, dbname)")
	}
	if s.Engine != "" && !strings.Contains(strings.ToLower(s.Engine), "postgres") {
		return "", fmt.Errorf("the secret is for engine %q; kwickmig needs PostgreSQL", s.Engine)
	}
	port := strings.Trim(string(s.Port), `"`)
	if port == "null" {
		port = ""
	}
	if port != "" {
		if _, err := strconv.Atoi(port); err != nil {
			return "", errors.New("the secret's port is not a number")
		}
	}
	q := url.Values{}
	for k, v := range params {
		q[k] = v
	}
	take := func(key string, fallback *string) {
		if v := q.Get(key); v != "" {
			*fallback = v
		}
		q.Del(key)
	}
	take("host", &s.Host)
	take("port", &port)
	take("dbname", &s.DBName)
	take("user", &s.Username)
	if s.Host == "" {
		return "", errors.New("the secret has no host: add it to the reference (…?host=HOST&dbname=DB)")
	}
	if s.Username == "" {
		return "", errors.New("the secret has no username")
	}
	u := url.URL{Scheme: "postgres", Host: s.Host, Path: "/" + s.DBName, RawQuery: q.Encode()}
	if port != "" {
		u.Host = net.JoinHostPort(s.Host, port)
	}
	if s.Password != "" {
		u.User = url.UserPassword(s.Username, s.Password)
	} else {
		u.User = url.User(s.Username)
	}
	return u.String(), nil
}

func sortedKeys(v url.Values) []string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// quoteKV quotes a keyword/value connection-string value.
func quoteKV(v string) string {
	if v != "" && !strings.ContainsAny(v, " '\\") {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
