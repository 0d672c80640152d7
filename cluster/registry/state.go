package registry

import (
	"fmt"

	"github.com/go-zookeeper/zk"
)

// zkState reports nil while conn has a session, else what it is doing instead.
func zkState(conn *zk.Conn) error {
	if st := conn.State(); st != zk.StateHasSession {
		return fmt.Errorf("registry: zookeeper session: %s", st)
	}
	return nil
}

// State returns nil while the registry's ZooKeeper session is up (for /healthz). During a
// reconnect or after an expiry it says which state the session is in; the registry keeps
// retrying and re-registers by itself.
func (r *Registry) State() error { return zkState(r.conn) }

// State returns nil while the watcher's ZooKeeper session is up (for /healthz). While it is
// down, Nodes answers the last snapshot.
func (w *Watcher) State() error { return zkState(w.conn) }
