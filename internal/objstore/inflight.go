package objstore

// Started and Finished bracket one request attempt (the S3 store calls them
// around every attempt, on the SDK path and the fast PUT path alike), so
// InFlight tells how many requests wait for the endpoint right now — the
// --metrics-addr gauge. One atomic add each: nothing on the hot path waits.
// A GetObject attempt counts until its response headers arrive; its body
// is read by the caller afterwards.

// Started counts one attempt as sent.
func (p *Pacer) Started() {
	if p != nil {
		p.inFlight.Add(1)
	}
}

// Finished counts one attempt as answered (or failed).
func (p *Pacer) Finished() {
	if p != nil {
		p.inFlight.Add(-1)
	}
}

// InFlight returns the attempts started and not yet finished.
func (p *Pacer) InFlight() int64 {
	if p == nil {
		return 0
	}
	return p.inFlight.Load()
}
