package console

// Stream is a guest's terminal as the guest layer (vmm) hands it over.
type Stream interface {
	// Subscribe returns what the guest printed so far (up to 64 KiB) and a channel of later output.
	// A subscriber that falls too far behind has its channel closed (it resubscribes). cancel ends it.
	Subscribe() (backlog []byte, updates <-chan []byte, cancel func())
	// Write sends bytes to the guest's terminal input.
	Write(p []byte) (int, error)
}
