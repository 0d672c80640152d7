package saver_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"imgate/codec"
	"imgate/message"
	"imgate/saver"
)

// crashHelperEnv names the database TestHelperProcess writes to; set only in the child.
const crashHelperEnv = "IMGATE_SAVER_CRASH_DB"

// crashSyncEnv carries the synchronous level to the child.
const crashSyncEnv = "IMGATE_SAVER_CRASH_SYNC"

// crashUsers is the sender and receiver of the crash test's message id: a mix of
// pairs and self messages.
func crashUsers(id int64) (sender, receiver string) {
	return fmt.Sprintf("s%d", id%3), fmt.Sprintf("s%d", id%5)
}

// TestHelperProcess is the crash test's child: it saves batches forever, printing
// "ACK <msgId>" for every message of a batch once Save has returned, until it is
// killed. Outside the crash test it does nothing.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(crashHelperEnv)
	if path == "" {
		return
	}
	ctx := context.Background()
	s, err := saver.OpenSQLite(ctx, saver.SQLiteConfig{Path: path, Synchronous: os.Getenv(crashSyncEnv)})
	if err != nil {
		fmt.Fprintf(os.Stderr, "open: %v\n", err)
		os.Exit(2)
	}
	var line []byte
	deadline := time.Now().Add(2 * time.Minute) // never outlive a parent that died
	for id := int64(1); time.Now().Before(deadline); {
		n := int(id%7) + 1
		recs := make([]message.Record, n)
		for i := range recs {
			snd, rcv := crashUsers(id)
			recs[i] = message.Record{Msg: codec.ChatMsg{SenderID: snd, ReceiverID: rcv, Msg: "crash", MsgType: codec.Words,
				MsgID: id, ClientMsgID: "k" + strconv.FormatInt(id, 10), ChatTime: time.Now()}}
			id++
		}
		out, err := s.Save(ctx, recs)
		if err != nil {
			fmt.Fprintf(os.Stderr, "save: %v\n", err)
			os.Exit(2)
		}
		line = line[:0]
		for _, o := range out {
			line = append(line, "ACK "...)
			line = strconv.AppendInt(line, o.Msg.MsgID, 10)
			line = append(line, '\n')
		}
		if _, err := os.Stdout.Write(line); err != nil {
			os.Exit(3)
		}
	}
	os.Exit(0)
}

// TestSQLiteSurvivesSIGKILL kills a child that is saving and checks that every message
// it had acknowledged is in the database with both inbox rows.
func TestSQLiteSurvivesSIGKILL(t *testing.T) {
	for _, sync := range []string{"FULL", "NORMAL"} {
		t.Run(sync, func(t *testing.T) { crashOnce(t, sync) })
	}
}

func crashOnce(t *testing.T, sync string) {
	path := filepath.Join(t.TempDir(), "crash.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashHelperEnv+"="+path, crashSyncEnv+"="+sync)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const want = 400
	acked := make(chan int64, 1<<16)
	readDone := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "ACK "); ok {
				id, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					readDone <- err
					return
				}
				acked <- id
			}
		}
		readDone <- sc.Err()
	}()
	var ids []int64
	timeout := time.After(2 * time.Minute)
	for len(ids) < want {
		select {
		case id := <-acked:
			ids = append(ids, id)
		case err := <-readDone:
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("child stopped after %d acks (%v); stderr: %s", len(ids), err, stderr.String())
		case <-timeout:
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("only %d acks before the deadline; stderr: %s", len(ids), stderr.String())
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no deferred code, no close
		t.Fatal(err)
	}
	if err := <-readDone; err != nil {
		t.Fatalf("reading the child: %v", err)
	}
	_ = cmd.Wait()
	close(acked)
	for id := range acked { // printed before the kill: acknowledged too
		ids = append(ids, id)
	}

	s := openSQLite(t, path, sync)
	ctx := context.Background()
	inbox := map[string]map[int64]bool{}
	for u := range 5 {
		user := fmt.Sprintf("s%d", u)
		es, err := s.Replay(ctx, user, 0, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		inbox[user] = map[int64]bool{}
		for i, e := range es {
			if e.Seq != int64(i+1) {
				t.Fatalf("%s: position %d has seq %d after the crash", user, i, e.Seq)
			}
			inbox[user][e.Msg.MsgID] = true
		}
	}
	for _, id := range ids {
		snd, rcv := crashUsers(id)
		if !inbox[snd][id] || !inbox[rcv][id] {
			t.Fatalf("acknowledged msgId %d lost: in %s's inbox %v, in %s's inbox %v", id, snd, inbox[snd][id], rcv, inbox[rcv][id])
		}
	}
	t.Logf("synchronous=%s: %d acknowledged messages all present after SIGKILL", sync, len(ids))
}
