package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Parallelism flags: one name per kind of work, in every command (#12).
//
//	--concurrency  S3 requests in flight: uploads, HEAD/GET checks, listings
//	               of the bucket (files sync, verify files, verify refs)
//	--walkers      directories of the source tree read at once (NFS latency)
//	               (files sync, verify files)
//	--jobs         database connections, one COPY stream or checksum query
//	               each (db copy/export/import, verify db); a second pool of
//	               connections is --<phase>-jobs (db copy --index-jobs)
//
// Not worker counts, so outside the rule: --index-workers (a setting of the
// target server's own parallel workers inside one index build) and verify
// files --list-ranges (how many key ranges the tree is split into; the
// --walkers list them). TestCommandTreeConventions holds every command to
// this rule.
var parallelismFlags = map[string]string{
	"concurrency": "S3 requests in flight",
	"walkers":     "directories read at once",
	"jobs":        "database connections",
	"index-jobs":  "database connections building indexes",
}

// flagAliases keeps renamed flags working under their old names, hidden:
// pflag maps each old name to the new one before it looks a flag up (the
// help shows only the new name). The map is old name -> new name.
func flagAliases(cmd *cobra.Command, aliases map[string]string) {
	f := cmd.Flags()
	prev := f.GetNormalizeFunc()
	f.SetNormalizeFunc(func(fs *pflag.FlagSet, name string) pflag.NormalizedName {
		if n, ok := aliases[name]; ok {
			name = n
		}
		return prev(fs, name)
	})
	// Recorded for the tests that check the old names still parse.
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	for old, n := range aliases {
		cmd.Annotations[aliasAnnotation+old] = n
	}
}

// aliasAnnotation prefixes a command annotation "old name" -> new name.
const aliasAnnotation = "kwickmig/flag-alias:"
