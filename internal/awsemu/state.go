package awsemu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// stateFile is what the state file holds: everything that changes while
// the emulator runs. The world itself comes from the world file. The audit
// lives next to it in PATH.audit.jsonl, one entry per line, appended as it
// grows: rewriting a long audit on every save would stall the emulator.
type stateFile struct {
	Version     int             `json:"version"`
	SavedAt     time.Time       `json:"saved_at"`
	ClockOffset time.Duration   `json:"clock_offset"`
	KMS         json.RawMessage `json:"kms"`
	STS         json.RawMessage `json:"sts"`
	EC2         json.RawMessage `json:"ec2"`
	// Audit is filled only in the admin view (GET /_emu/state).
	Audit []AuditEntry `json:"audit,omitempty"`
}

const stateVersion = 3

func auditLogPath(statePath string) string { return statePath + ".audit.jsonl" }

// loadState reads the state file at path and its audit log; a missing
// state file is no error.
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
	audit, err := readAuditLog(auditLogPath(path))
	if err != nil {
		return false, err
	}
	e.clock.SetOffset(st.ClockOffset)
	for _, part := range []struct {
		name string
		raw  json.RawMessage
		into any
	}{{"kms", st.KMS, e.kms}, {"sts", st.STS, e.sts}, {"ec2", st.EC2, e.ec2}} {
		if err := json.Unmarshal(part.raw, part.into); err != nil {
			return false, fmt.Errorf("state file %s: %s: %w (delete it to start fresh)", path, part.name, err)
		}
	}
	e.audit.Load(audit)
	e.saved = savedMark{auditLen: len(audit), offset: st.ClockOffset}
	return true, nil
}

// readAuditLog reads the audit log; a missing file is an empty audit. A
// torn tail (a crash while appending) is cut off so appends continue on a
// clean line.
func readAuditLog(path string) ([]AuditEntry, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading audit log: %w", err)
	}
	var out []AuditEntry
	good := 0
	for good < len(data) {
		end := bytes.IndexByte(data[good:], '\n')
		if end < 0 {
			break
		}
		var a AuditEntry
		if err := json.Unmarshal(data[good:good+end], &a); err != nil {
			break
		}
		out = append(out, a)
		good += end + 1
	}
	if good < len(data) {
		if err := os.Truncate(path, int64(good)); err != nil {
			return nil, fmt.Errorf("repairing audit log %s: %w", path, err)
		}
	}
	for i := range out {
		out[i].Seq = i + 1 // Seq is the position in the audit
	}
	return out, nil
}

// pendingSave is a state snapshot taken under the lock and written after.
type pendingSave struct {
	state []byte
	audit []AuditEntry // entries not yet in the audit log
}

// savedMark is what the state file holds: every call changes the audit,
// and Advance the clock, so the state is dirty when either moved.
type savedMark struct {
	auditLen int
	offset   time.Duration
}

// dirty reports whether the state changed since the last save (saveMu held).
func (e *Emulator) dirty() bool {
	return e.saved != savedMark{auditLen: e.audit.Len(), offset: e.clock.Offset()}
}

// snapshotForSave encodes the state and takes the unsaved audit entries
// (saveMu held).
func (e *Emulator) snapshotForSave() (pendingSave, error) {
	offset := e.clock.Offset()
	data, err := e.encodeState(offset, nil)
	if err != nil {
		return pendingSave{}, fmt.Errorf("encoding state: %w", err)
	}
	p := pendingSave{state: data, audit: e.audit.TakeUnsaved()}
	e.saved = savedMark{auditLen: e.saved.auditLen + len(p.audit), offset: offset}
	return p, nil
}

// write appends the new audit entries and replaces the state file.
func (p pendingSave) write(path string) error {
	if len(p.audit) > 0 {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		for i := range p.audit {
			if err := enc.Encode(&p.audit[i]); err != nil {
				return fmt.Errorf("encoding audit: %w", err)
			}
		}
		f, err := os.OpenFile(auditLogPath(path), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("saving audit log: %w", err)
		}
		_, werr := f.Write(buf.Bytes())
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return fmt.Errorf("saving audit log: %w", werr)
		}
	}
	return writeFileAtomic(path, p.state)
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

// saver writes the state at most every saveInterval while calls change it.
// Saves are serialized by saveMu so audit appends stay in order.
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
		e.saveMu.Lock()
		if !e.dirty() {
			e.saveMu.Unlock()
			continue
		}
		p, err := e.snapshotForSave()
		if err == nil {
			err = p.write(e.opts.StatePath)
		}
		e.saveMu.Unlock()
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
	e.saveMu.Lock()
	defer e.saveMu.Unlock()
	p, err := e.snapshotForSave()
	if err != nil {
		return err
	}
	return p.write(e.opts.StatePath)
}

// StateJSON returns the emulator's state with its audit, for GET /_emu/state.
func (e *Emulator) StateJSON() ([]byte, error) {
	return e.encodeState(e.clock.Offset(), e.audit.Entries(AuditFilter{}))
}

// encodeState encodes every service's state (and audit, for the admin view).
func (e *Emulator) encodeState(offset time.Duration, audit []AuditEntry) ([]byte, error) {
	st := stateFile{Version: stateVersion, SavedAt: e.now(), ClockOffset: offset, Audit: audit}
	for _, part := range []struct {
		into *json.RawMessage
		from any
	}{{&st.KMS, e.kms}, {&st.STS, e.sts}, {&st.EC2, e.ec2}} {
		raw, err := json.Marshal(part.from)
		if err != nil {
			return nil, err
		}
		*part.into = raw
	}
	return json.Marshal(st)
}
