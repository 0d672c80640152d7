package saver

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgPool is a small bounded pool of *pgx.Conn.
//
// Why not pgxpool: pgxpool needs github.com/jackc/puddle/v2, which this module does not
// require yet (go.sum has no entry for it). The Store only needs acquire/release with a
// bound, which this provides; switching to pgxpool later changes only this file.
type pgPool struct {
	cfg    *pgx.ConnConfig
	sem    chan struct{}  // one token per open or opening connection in use
	idle   chan *pgx.Conn // idle connections, at most cap(sem)
	mu     sync.Mutex     // guards closed against pushes into idle
	closed bool           // guarded by mu
}

func newPGPool(cfg *pgx.ConnConfig, maxConns int) *pgPool {
	return &pgPool{cfg: cfg, sem: make(chan struct{}, maxConns), idle: make(chan *pgx.Conn, maxConns)}
}

// acquire returns an idle connection or opens one, waiting while maxConns are in use.
// The caller must release it.
func (p *pgPool) acquire(ctx context.Context) (*pgx.Conn, error) {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		<-p.sem
		return nil, ErrClosed
	}
	if c := p.takeIdle(); c != nil {
		return c, nil
	}
	c, err := pgx.ConnectConfig(ctx, p.cfg)
	if err != nil {
		<-p.sem
		return nil, err
	}
	return c, nil
}

// takeIdle returns an idle connection that is not closed, nil when there is none.
func (p *pgPool) takeIdle() *pgx.Conn {
	for {
		select {
		case c := <-p.idle:
			if !c.IsClosed() {
				return c
			}
		default:
			return nil
		}
	}
}

// release returns c to the pool, or closes it when it is broken, inside a transaction
// (a failed rollback) or the pool is closed.
func (p *pgPool) release(c *pgx.Conn) {
	defer func() { <-p.sem }()
	if !c.IsClosed() && c.PgConn().TxStatus() == 'I' {
		p.mu.Lock()
		if !p.closed {
			p.idle <- c // never blocks: at most cap(sem) connections exist
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
	}
	closeConn(c)
}

// close closes the idle connections; connections in use are closed on release.
func (p *pgPool) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	for {
		select {
		case c := <-p.idle:
			closeConn(c)
		default:
			return
		}
	}
}

func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = c.Close(ctx)
}
