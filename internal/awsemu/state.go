package awsemu

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// stateFile is what the state file holds: everything that changes while
// the emulator runs. The world itself comes from the world file.
type stateFile struct {
	Version     int           `json:"version"`
	SavedAt     time.Time     `json:"saved_at"`
	ClockOffset time.Duration `json:"clock_offset"`
	KMS         *kmsState     `json:"kms"`
	STS         *stsState     `json:"sts"`
	EC2         *ec2State     `json:"ec2"`
	Audit       []AuditEntry  `json:"audit"`
}

const stateVersion = 1

// loadState reads the state file at path; a missing file is no error.
func (e *Emulator) loadState(path string) (bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading state file: %w", err)
	}
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		return false, fmt.Errorf("state file %s is not valid (delete it to start fresh): %w", path, err)
	}
	if st.Version != stateVersion {
		return false, fmt.Errorf("state file %s has version %d, this emulator reads version %d (delete it to start fresh)", path, st.Version, stateVersion)
	}
	if st.KMS == nil || st.STS == nil || st.EC2 == nil {
		return false, fmt.Errorf("state file %s is incomplete (delete it to start fresh)", path)
	}
	e.offset = st.ClockOffset
	e.kms = st.KMS
	e.kms.ensure()
	e.sts = st.STS
	if e.sts.Sessions == nil {
		e.sts.Sessions = map[string]*stsSession{}
	}
	e.ec2 = st.EC2
	e.audit = st.Audit
	return true, nil
}

// snapshotState encodes the state (lock held).
func (e *Emulator) snapshotState() ([]byte, error) {
	return json.Marshal(stateFile{
		Version: stateVersion, SavedAt: e.now(), ClockOffset: e.offset,
		KMS: e.kms, STS: e.sts, EC2: e.ec2, Audit: e.audit,
	})
}

// saveStateLocked writes the state file atomically (lock held).
func (e *Emulator) saveStateLocked(path string) error {
	data, err := e.snapshotState()
	if err != nil {
		return fmt.Errorf("encoding state: %w", err)
	}
	e.dirty = false
	return writeFileAtomic(path, data)
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".awsemu-state-*")
	if err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("saving state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("saving state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("saving state: %w", err)
	}
	return nil
}

// saver writes the state file at most every saveInterval while calls change
// it: encoding the whole state on every call would make each call O(state).
func (e *Emulator) saver() {
	defer e.saverWG.Done()
	const saveInterval = 500 * time.Millisecond
	t := time.NewTicker(saveInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stopped:
			return
		case <-t.C:
		}
		e.mu.Lock()
		if !e.dirty {
			e.mu.Unlock()
			continue
		}
		data, err := e.snapshotState()
		e.dirty = false
		e.mu.Unlock()
		if err == nil {
			err = writeFileAtomic(e.opts.StatePath, data)
		}
		if err != nil {
			e.logf("awsemu: %v", err)
		}
	}
}

// SaveState writes the state file now (no-op without Options.StatePath).
func (e *Emulator) SaveState() error {
	if e.opts.StatePath == "" {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.saveStateLocked(e.opts.StatePath)
}

// StateJSON returns the emulator's state as the state file stores it.
func (e *Emulator) StateJSON() ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.snapshotState()
}
