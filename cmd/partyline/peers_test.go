package main

// What the interop tests share: finding the external clients, loopback
// ports for them, and baresip's configuration.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// requirePeer returns the path of an external client the test drives. When
// it is missing the test is skipped, except in CI, where a skip would hide
// that the interop tests never ran.
func requirePeer(t *testing.T, bin string) string {
	t.Helper()
	path, err := exec.LookPath(bin)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s not installed (make peers, or apt-get install sip-tester sipsak baresip-core)", bin)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// baresip is a headless baresip with one account.
type baresip struct {
	user, password string
	outbound       string // the server: "sip:127.0.0.1:PORT", ";transport=tcp" for TCP
	audio          string // a WAV file it sends in calls; "" registers only (no audio modules)
	autoAnswer     bool   // answer calls at once
}

// config writes its configuration folder (listening on a free loopback
// port, RTP on four free ports, what it hears to heard.wav in the folder)
// and returns it.
func (b baresip) config(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	config := fmt.Sprintf("sip_listen 127.0.0.1:%d\nnet_interface 127.0.0.1\nmodule_path /usr/lib/baresip/modules\n", freePort(t))
	account := fmt.Sprintf("<sip:%s@127.0.0.1>;auth_pass=%s;outbound=\"%s\";regint=600", b.user, b.password, b.outbound)
	if b.audio != "" {
		rtp := freeEvenPort(t)
		config += fmt.Sprintf("module g711.so\nmodule aufile.so\naudio_source aufile,%s\naudio_player aufile,%s\n"+
			"audio_srate 8000\naudio_channels 1\nrtp_ports %d-%d\nmodule_app menu.so\n", b.audio, filepath.Join(dir, "heard.wav"), rtp, rtp+3)
		account += ";audio_codecs=PCMU,PCMA"
	}
	if b.autoAnswer {
		account += ";answermode=auto"
	}
	for name, text := range map[string]string{"config": config + "module_app account.so\n", "accounts": account + "\n", "contacts": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// freeEvenPort is a free loopback port with an even number, for RTP.
func freeEvenPort(t *testing.T) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		if p := freePort(t); p%2 == 0 && p < 65534 {
			return p
		}
	}
	t.Fatal("no free even loopback port")
	return 0
}
