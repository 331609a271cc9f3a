// Command mkbucket creates the benchmark's buckets on the harness's S3 server.
//
//	mkbucket NAME...
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kwick/kwickmig/bench/internal/s3env"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: mkbucket NAME...")
		os.Exit(2)
	}
	c, err := s3env.Client(1)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkbucket:", err)
		os.Exit(1)
	}
	for _, name := range os.Args[1:] {
		if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: &name}); err != nil {
			fmt.Fprintf(os.Stderr, "mkbucket: create %s: %v\n", name, err)
			os.Exit(1)
		}
	}
}
