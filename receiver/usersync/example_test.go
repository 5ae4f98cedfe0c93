package usersync_test

import (
	"log"
	"net/http"
	"os"

	"go.uber.org/zap"

	"github.com/userhooks/userhooks/receiver/usersync"
	"github.com/userhooks/userhooks/signature"
)

// Running the reference receiver inside another program, as `worker dev`
// does for its demo receiver.
func ExampleOpen() {
	secret, err := signature.ParseSecret(os.Getenv("USERSYNC_SECRET"))
	if err != nil {
		log.Fatal(err)
	}
	m, err := usersync.Open("usersync.db", usersync.Options{
		Secrets:  []signature.Secret{secret},
		OnResult: usersync.LogResults(zap.NewExample()),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	http.Handle("POST /webhooks", m)
	log.Fatal(http.ListenAndServe("127.0.0.1:9100", nil))
}
