package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"

	"imgate/client"
)

// A device of alice: found through the dispatcher, resuming from a cursor file, printing
// what arrives. Run blocks until ctx ends, Close, or a permanent refusal (a bad token).
func Example() {
	c, err := client.New(client.Config{
		UserID:     "alice",
		Dispatcher: "http://127.0.0.1:8080",
		Token:      client.StaticToken(os.Getenv("IMGATE_TOKEN")),
		Cursor:     client.FileCursor{Path: "alice.cursor"},
		Logger:     slog.Default(),
		OnMessage: func(m client.Message) {
			fmt.Printf("%s: %s\n", m.SenderID, m.Msg)
		},
		OnState: func(s client.State, err error) {
			log.Printf("connection %v (%v)", s, err)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		if err := c.Run(ctx); errors.Is(err, client.ErrUnauthorized) {
			log.Print("the token was refused: sign in again")
		}
	}()
	ack, err := c.Send(ctx, client.Message{ReceiverID: "bob", Msg: "hello"})
	var se *client.ServerError
	switch {
	case errors.As(err, &se) && se.Retryable():
		log.Printf("refused for now (%s): send it again later with ClientMsgID %q", se.Code, se.ClientMsgID)
	case err != nil:
		log.Print(err)
	default:
		log.Printf("stored as %d at %s", ack.MsgID, ack.ChatTime)
	}
	_ = c.Close()
}

// A group message (PROTOCOL §8): GroupID instead of ReceiverID, with the app's own members
// in Extra. Every device of every member gets it with Message.GroupID set; a sender who is
// not a member gets ErrForbidden.
func ExampleClient_Send_group() {
	var c *client.Client // from client.New, running
	ack, err := c.Send(context.Background(), client.Message{
		GroupID:     "team-7",
		Msg:         "https://cdn.example.com/p/42.jpg",
		Type:        2,              // codec.Image
		ClientMsgID: "alice-pic-42", // your own idempotency key; generated when empty
		Extra:       map[string]json.RawMessage{"width": json.RawMessage(`640`)},
	})
	switch {
	case errors.Is(err, client.ErrForbidden):
		log.Print("not a member of team-7") // final: sending it again is refused again
	case err != nil:
		log.Print(err)
	default:
		log.Printf("stored as %d", ack.MsgID)
	}
}

// FileCursor keeps the cursor across restarts; a missing file is a new device.
func ExampleFileCursor() {
	dir, err := os.MkdirTemp("", "cursor")
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	cur := client.FileCursor{Path: filepath.Join(dir, "bob.cursor")}
	_, ok, _ := cur.Load()
	fmt.Println("stored:", ok)
	_ = cur.Save(42)
	seq, ok, _ := cur.Load()
	fmt.Println("stored:", ok, seq)
	// Output:
	// stored: false
	// stored: true 42
}

// Pick asks a dispatcher for a node; a 503 carries its Retry-After advice.
func ExamplePick() {
	url, err := client.Pick(context.Background(), nil, "http://127.0.0.1:8080", "alice")
	var he *client.HTTPError
	if errors.As(err, &he) && he.Status == 503 {
		log.Printf("no live node: ask again in %s (plus jitter)", he.RetryAfter)
	}
	_ = url
}
