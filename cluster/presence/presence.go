package presence

import "errors"

// ErrFenced is returned by a presence whose node registration was removed
// (RemoveNode with an epoch at least its own): it must register again and call
// SetIdentity with the new id and epoch before its entries are written again.
var ErrFenced = errors.New("presence: fenced: node registration removed")
