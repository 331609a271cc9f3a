// Package s3env builds a lean aws-sdk-go-v2 S3 client for the benchmark
// helpers from the variables tools/testenv exports (KWICKMIG_TEST_S3_*).
package s3env

import (
	"fmt"
	"net/http"
	"os"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Client returns a path-style client for the harness's S3 server whose HTTP
// transport keeps up to conns idle connections to it.
func Client(conns int, optFns ...func(*s3.Options)) (*s3.Client, error) {
	get := func(name string) (string, error) {
		v := os.Getenv(name)
		if v == "" {
			return "", fmt.Errorf("%s is not set (run through tools/testenv)", name)
		}
		return v, nil
	}
	endpoint, err := get("KWICKMIG_TEST_S3_ENDPOINT")
	if err != nil {
		return nil, err
	}
	ak, err := get("KWICKMIG_TEST_S3_ACCESS_KEY")
	if err != nil {
		return nil, err
	}
	sk, err := get("KWICKMIG_TEST_S3_SECRET_KEY")
	if err != nil {
		return nil, err
	}
	region := os.Getenv("KWICKMIG_TEST_S3_REGION")
	if region == "" {
		region = "us-east-1"
	}
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns = conns
		t.MaxIdleConnsPerHost = conns
	})
	opts := s3.Options{
		Region:       region,
		BaseEndpoint: &endpoint,
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(ak, sk, ""),
		HTTPClient:   httpClient,
	}
	return s3.New(opts, optFns...), nil
}
