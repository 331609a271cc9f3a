package s3store

// classifyRead sorts an error from reading an object's body.
func classifyRead(err error) error { return err }
