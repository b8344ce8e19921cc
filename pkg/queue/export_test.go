package queue

// EncodeFailure exposes Failure.encode to the black-box tests.
func EncodeFailure(f *Failure) ([]byte, error) { return f.encode() }
