package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/kwick/kwickmig/internal/pgutil"
	"github.com/kwick/kwickmig/internal/secrets"
)

// awsOptions are the global --region and --profile: the AWS account and
// region for Parameter Store, Secrets Manager and RDS IAM tokens. Commands
// that talk to S3 have their own --region and --profile with the same
// meaning; those then serve both.
type awsOptions struct {
	Region  string
	Profile string
	ctx     context.Context
}

func addAWSFlags(root *cobra.Command, a *awsOptions) {
	root.PersistentFlags().StringVar(&a.Region, "region", "", "AWS region for ssm:/secretsmanager: connection strings and aws_iam_auth (default: from the AWS configuration)")
	root.PersistentFlags().StringVar(&a.Profile, "profile", "", "AWS shared-config profile for ssm:/secretsmanager: connection strings and aws_iam_auth")
}

// setupAWS reads --region/--profile of the command being run (its own S3
// flags or the global ones) and gives every aws_iam_auth connection its
// token source.
func (a *awsOptions) setupAWS(cmd *cobra.Command) {
	a.ctx = cmd.Context()
	if f := cmd.Flags().Lookup("region"); f != nil {
		a.Region = f.Value.String()
	}
	if f := cmd.Flags().Lookup("profile"); f != nil {
		a.Profile = f.Value.String()
	}
	pgutil.SetIAMToken(secrets.NewTokenSource(a.options()).Token)
}

func (a *awsOptions) options() secrets.Options {
	return secrets.Options{Region: a.Region, Profile: a.Profile}
}

// connString is the one place a connection string from a flag or
// KWICKMIG_SOURCE_URL/KWICKMIG_TARGET_URL passes before use: a secret
// reference (ssm:NAME, secretsmanager:NAME) becomes the connection string it
// holds, and reports, records and messages name the reference instead of it.
func (g *globalOptions) connString(value string) (string, error) {
	if !secrets.IsReference(value) {
		return value, nil
	}
	ctx := g.aws.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	s, err := secrets.Resolve(ctx, value, g.aws.options())
	if err != nil {
		return "", err
	}
	pgutil.RegisterReference(s, value)
	return s, nil
}
