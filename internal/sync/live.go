package sync

// Live returns the run's counters as they are now, from any goroutine, at
// any time (before Run too): only the atomic counters are read, so a
// metrics scrape costs the hot path nothing. Elapsed, Throttles and
// OutageSince are left zero (the caller has the pacer and OnOutage).
func (s *Syncer) Live() Counters {
	return Counters{
		Scanned: s.c.scanned.Load(), Uploaded: s.c.uploaded.Load(), Unchanged: s.c.unchanged.Load(),
		Deleted: s.c.deleted.Load(), Missing: s.c.missing.Load(), Failed: s.c.failed.Load(),
		Skipped: s.c.skipped.Load(), BytesUploaded: s.c.bytesUploaded.Load(), Queued: s.c.queued.Load(),
	}
}
