package pgcopy

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kwick/kwickmig/internal/kmtest"
)

func TestExportImportRoundTrip(t *testing.T) {
	t.Parallel()
	e := kmtest.PG(t)
	kmtest.Exec(t, e.SourceURL, typesSchema, hostileSchema, bigTable)
	dir := filepath.Join(t.TempDir(), "export")
	opts := testOptions(t, e)
	opts.Location = dir
	opts.SplitLargerThan = 512 << 10
	exp, err := Export(ctxT(t), opts)
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	man := readManifestFile(t, dir)
	if man.Snapshot == "" || man.Snapshot != exp.Snapshot {
		t.Errorf("manifest snapshot=%q, result %q: want the same non-empty snapshot", man.Snapshot, exp.Snapshot)
	}
	if len(man.Tables) != 7 || man.PreData == nil || man.PostData == nil {
		t.Fatalf("manifest tables=%d pre=%v post=%v, want 7 tables and both scripts", len(man.Tables), man.PreData, man.PostData)
	}
	parts := 0
	for _, mt := range man.Tables {
		parts += len(mt.Parts)
		for _, p := range mt.Parts {
			if len(p.File.SHA256) != 64 || p.File.Size == 0 {
				t.Errorf("%s.%s file %+v, want a size and a sha256", mt.Schema, mt.Name, p.File)
			}
		}
	}
	if parts < 8 {
		t.Errorf("parts=%d, want big split into several", parts)
	}
	// Import into the target, in two runs: an induced failure, then --resume.
	var loaded atomic.Int32
	induced := errors.New("induced failure")
	opts.Jobs = 1
	opts.testHookPartLoaded = func(p *Part) error {
		if loaded.Add(1) == 2 {
			return induced
		}
		return nil
	}
	if _, err := Import(ctxT(t), opts); !errors.Is(err, induced) {
		t.Fatalf("import err=%v, want the induced failure", err)
	}
	opts.testHookPartLoaded = nil
	opts.Resume = true
	res, err := Import(ctxT(t), opts)
	if err != nil {
		t.Fatalf("import --resume: %v", err)
	}
	sameTables(t, e, 20063, "public.scalars", "public.texty", "public.nocols", `"My Schema"."Order Lines"`, `public."weird""name"`, `public."MixedCase"`, "public.big")
	if res.Rows != 20063 { // parts loaded by the first run count too
		t.Errorf("import rows=%d, want 20063", res.Rows)
	}
	if got := queryInt(t, e.TargetURL, "SELECT nextval('texty_id_seq')"); got != 4 {
		t.Errorf("target nextval(texty_id_seq)=%d, want 4", got)
	}
	if got := queryInt(t, e.TargetURL, `SELECT count(*) FROM pg_indexes WHERE indexname = 'Idx "quoted"'`); got != 1 {
		t.Errorf(`index "Idx ""quoted""" count=%d, want 1`, got)
	}
}

func TestImportRefusesCorruptFile(t *testing.T) {
	t.Parallel()
	e := kmtest.PG(t)
	kmtest.Exec(t, e.SourceURL, bigTable)
	dir := filepath.Join(t.TempDir(), "export")
	opts := testOptions(t, e)
	opts.Location = dir
	if _, err := Export(ctxT(t), opts); err != nil {
		t.Fatalf("export: %v", err)
	}
	man := readManifestFile(t, dir)
	key := man.Tables[0].Parts[0].File.Key
	path := filepath.Join(dir, key)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40 // one flipped bit
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Import(ctxT(t), opts)
	if err == nil || !strings.Contains(err.Error(), "export file "+key+" is damaged") {
		t.Fatalf("import err=%v, want the damaged file %s named", err, key)
	}
	if got := queryInt(t, e.TargetURL, "SELECT count(*) FROM big"); got != 0 {
		t.Errorf("target rows=%d after a refused file, want 0", got)
	}
}

func TestExportImportS3(t *testing.T) {
	e := kmtest.PG(t)
	s3 := kmtest.S3(t)
	s3.SetAWSEnv(t)
	kmtest.Exec(t, e.SourceURL, typesSchema)
	opts := testOptions(t, e)
	opts.Location = "s3://" + s3.Bucket + "/exports/one"
	opts.S3.EndpointURL = s3.Endpoint
	if _, err := Export(ctxT(t), opts); err != nil {
		t.Fatalf("export: %v", err)
	}
	if _, err := Export(ctxT(t), opts); err == nil || !strings.Contains(err.Error(), "already holds an export") {
		t.Errorf("second export err=%v, want a refusal to overwrite", err)
	}
	if _, err := Import(ctxT(t), opts); err != nil {
		t.Fatalf("import: %v", err)
	}
	sameTables(t, e, 9, "public.scalars", "public.texty", "public.nocols")
}

func readManifestFile(t *testing.T, dir string) *Manifest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, manifestKey))
	if err != nil {
		t.Fatal(err)
	}
	man := &Manifest{}
	if err := json.Unmarshal(data, man); err != nil {
		t.Fatal(err)
	}
	return man
}
