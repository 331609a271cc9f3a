package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kwick/kwickmig/internal/checkpoint"
)

// rebuildReport decodes the --report of --rebuild-checkpoint.
type rebuildReport struct {
	ObjectsListed int64 `json:"objects_listed"`
	Recorded      int64 `json:"recorded"`
	NotMatching   int64 `json:"not_matching"`
	NoFile        int64 `json:"no_file"`
	SizeDiffers   int64 `json:"size_differs"`
	MtimeDiffers  int64 `json:"mtime_differs"`
	NotFromSync   int64 `json:"not_from_sync"`
	Errors        int64 `json:"errors"`
}

func (se *syncEnv) rebuild(extra ...string) (int, rebuildReport, string) {
	se.t.Helper()
	code, _, out := se.sync(append([]string{"--rebuild-checkpoint"}, extra...)...)
	var rep rebuildReport
	if data, err := os.ReadFile(se.rep); err == nil {
		must(se.t, json.Unmarshal(data, &rep))
	}
	return code, rep, out
}

// TestRebuildCheckpoint: a synced tree whose checkpoint is lost is
// recovered from one listing of the bucket; the following sync uploads
// exactly the files changed since their upload (another size, or the same
// size with another mtime) and the ones uploaded without kwickmig's mtime,
// nothing else; objects without a file (or reached only through a symlinked
// directory) are neither recorded nor deleted.
func TestRebuildCheckpoint(t *testing.T) {
	se := newSyncEnv(t, "rb")
	ctx := context.Background()
	files := makeTree(t, se.src, 400)
	if code, rep, out := se.sync(); code != 0 || rep.FilesUploaded != 400 {
		t.Fatalf("first sync: exit %d, uploaded %d\n%s", code, rep.FilesUploaded, out)
	}
	rels := keys(files)
	// Changed after the upload: another size; the same size and another
	// mtime; the same bytes, only touched.
	writeFile(t, se.src, rels[0], append(files[rels[0]], '!'))
	same := bytes.Clone(files[rels[1]])
	for i := range same {
		same[i] ^= 0xff
	}
	writeFile(t, se.src, rels[1], same)
	must(t, os.Chtimes(filepath.Join(se.src, rels[1]), time.Now(), time.Now().Add(-time.Hour)))
	must(t, os.Chtimes(filepath.Join(se.src, rels[2]), time.Now(), time.Now().Add(time.Hour)))
	// Gone from the source; its object stays.
	must(t, os.Remove(filepath.Join(se.src, rels[3])))
	// Uploaded by another tool (no x-amz-meta-mtime) over a file with the same bytes.
	se.putObject("rb/"+rels[4], files[rels[4]], false)
	// Objects no file maps to, and one reached only through a symlinked
	// directory (with the right size and mtime: the walk never goes there,
	// so recording it would make it "gone" and deletable).
	se.putObject("rb/orphans/x.json", []byte("x"), false)
	se.putObject("rb/%!abc.json", []byte("y"), false) // DecodeKey gives abc.json, whose key has no "%!"
	writeFile(t, se.src, "real/r.json", []byte("real"))
	must(t, os.Symlink("real", filepath.Join(se.src, "link")))
	st, _ := os.Stat(filepath.Join(se.src, "real/r.json"))
	_, err := se.s3.Client.PutObject(ctx, &s3.PutObjectInput{Bucket: &se.s3.Bucket, Key: aws.String("rb/link/r.json"),
		Body: bytes.NewReader([]byte("real")), Metadata: map[string]string{"mtime": formatUnix(st.ModTime())}})
	must(t, err)

	must(t, os.Remove(se.cp))
	code, rep, out := se.rebuild()
	t.Log(out)
	// 400 synced + 3 new keys; recorded: 400 minus the 3 changed, the deleted
	// one and the one without mtime.
	if code != 0 || rep.ObjectsListed != 403 || rep.Recorded != 395 || rep.NotMatching != 8 ||
		rep.SizeDiffers != 1 || rep.MtimeDiffers != 3 || rep.NoFile != 3 || rep.NotFromSync != 1 || rep.Errors != 0 {
		t.Fatalf("rebuild: exit %d, %+v\n%s", code, rep, out)
	}
	mustContain(t, out, "recorded")

	// The next sync: the rebuilt checkpoint is accepted, and only the four
	// files that differ from their objects are uploaded (plus the new one).
	code, srep, out := se.sync()
	if code != 0 || srep.FilesUploaded != 5 || srep.FilesUnchanged != 395 {
		t.Fatalf("sync after rebuild: exit %d, uploaded %d, unchanged %d; want 0, 5 (4 changed + real/r.json), 395\n%s",
			code, srep.FilesUploaded, srep.FilesUnchanged, out)
	}
	objects := bucketObjects(t, se.s3)
	for _, k := range []string{"rb/" + rels[3], "rb/orphans/x.json", "rb/%!abc.json", "rb/link/r.json"} {
		if _, ok := objects[k]; !ok {
			t.Fatalf("%s was deleted", k)
		}
	}
	for _, rel := range rels[:3] {
		b, _ := os.ReadFile(filepath.Join(se.src, rel))
		if !bytes.Equal(objects["rb/"+rel], b) {
			t.Fatalf("%s: object is not the changed file", rel)
		}
	}
	if code, srep, out = se.sync(); code != 0 || srep.FilesUploaded != 0 {
		t.Fatalf("second sync: exit %d, uploaded %d\n%s", code, srep.FilesUploaded, out)
	}

	// The run is in the history.
	db, err := checkpoint.OpenReadOnly(se.cp)
	must(t, err)
	var cmds []string
	must(t, db.Runs(func(r checkpoint.RunRecord) error { cmds = append(cmds, r.Command); return nil }))
	db.Close()
	if !strings.Contains(strings.Join(cmds, ","), "files rebuild-checkpoint") {
		t.Fatalf("runs %v: no rebuild", cmds)
	}

	// A checkpoint that holds records is never rebuilt into.
	code, _, out = se.rebuild()
	if code != 1 || !strings.Contains(out, "already records") || !strings.Contains(out, "move this one aside") {
		t.Fatalf("rebuild into a full checkpoint: exit %d\n%s", code, out)
	}
	// A damaged one is left alone, with the way out.
	must(t, os.Truncate(se.cp, 0))
	code, _, out = se.rebuild()
	if code != 1 || !strings.Contains(out, "move it aside first") {
		t.Fatalf("rebuild into a damaged checkpoint: exit %d\n%s", code, out)
	}
	if st, _ := os.Stat(se.cp); st.Size() != 0 {
		t.Fatal("the damaged checkpoint was changed")
	}
}
