package vmm

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Migration settings, measured in DESIGN.md ("Snapshot costs"): QEMU's
// default 128 MiB/s bandwidth cap quadruples save time, so it is lifted;
// mapped-ram puts every RAM page at a fixed offset of the file, so that
// successive snapshots of one guest share most 64 KiB blocks and the
// snapshot store can keep each block once. Source and destination must
// agree on the capabilities.
var migrationCaps = []map[string]any{
	{"capability": "mapped-ram", "state": true},
}

var migrationParams = map[string]any{
	"max-bandwidth":  int64(100) << 30,
	"downtime-limit": 60000,
}

func (m *Machine) setupMigration(ctx context.Context) error {
	if _, err := m.qmp.Execute(ctx, "migrate-set-capabilities", map[string]any{"capabilities": migrationCaps}); err != nil {
		return err
	}
	_, err := m.qmp.Execute(ctx, "migrate-set-parameters", migrationParams)
	return err
}

// Save writes the paused guest's whole state (devices, RAM, the shared
// page) to path. The guest stays paused; Cont resumes it.
func (m *Machine) Save(ctx context.Context, path string) error {
	if err := m.setupMigration(ctx); err != nil {
		return fmt.Errorf("vmm: save %s: %w", m.cfg.Name, err)
	}
	if _, err := m.qmp.Execute(ctx, "migrate", map[string]any{"uri": "file:" + path}); err != nil {
		return fmt.Errorf("vmm: save %s: migrate: %w", m.cfg.Name, err)
	}
	if err := m.waitMigration(ctx); err != nil {
		return fmt.Errorf("vmm: save %s to %s: %w", m.cfg.Name, path, err)
	}
	return nil
}

// SavePlain writes the paused guest's state the way a plain QMP migrate to
// a file does: a sequential stream, QEMU's default bandwidth cap unless
// maxBandwidth > 0. For benchmarks: the baseline Save is compared with.
func (m *Machine) SavePlain(ctx context.Context, path string, maxBandwidth int64) error {
	if _, err := m.qmp.Execute(ctx, "migrate-set-capabilities", map[string]any{"capabilities": []map[string]any{{"capability": "mapped-ram", "state": false}}}); err != nil {
		return err
	}
	bw := int64(128) << 20 // QEMU's default
	if maxBandwidth > 0 {
		bw = maxBandwidth
	}
	if _, err := m.qmp.Execute(ctx, "migrate-set-parameters", map[string]any{"max-bandwidth": bw}); err != nil {
		return err
	}
	if _, err := m.qmp.Execute(ctx, "migrate", map[string]any{"uri": "file:" + path}); err != nil {
		return err
	}
	return m.waitMigration(ctx)
}

// Load fills a machine started with Config.Incoming from a file written by
// Save. The guest comes up paused, its barrier not yet reached: Cont starts
// it, and it runs to the barrier after the one it was saved at.
func (m *Machine) Load(ctx context.Context, path string) error {
	if !m.cfg.Incoming {
		return fmt.Errorf("vmm: load %s: machine was not started with Incoming", m.cfg.Name)
	}
	if err := m.setupMigration(ctx); err != nil {
		return fmt.Errorf("vmm: load %s: %w", m.cfg.Name, err)
	}
	if _, err := m.qmp.Execute(ctx, "migrate-incoming", map[string]any{"uri": "file:" + path}); err != nil {
		return fmt.Errorf("vmm: load %s: migrate-incoming: %w", m.cfg.Name, err)
	}
	if err := m.waitMigration(ctx); err != nil {
		return fmt.Errorf("vmm: load %s from %s: %w", m.cfg.Name, path, err)
	}
	return nil
}

// waitMigration polls query-migrate until the migration ends. Polling costs
// at most a millisecond of latency and needs no event subscription.
func (m *Machine) waitMigration(ctx context.Context) error {
	for {
		raw, err := m.qmp.Execute(ctx, "query-migrate", nil)
		if err != nil {
			return err
		}
		var st struct {
			Status    string `json:"status"`
			ErrorDesc string `json:"error-desc"`
		}
		if err := json.Unmarshal(raw, &st); err != nil {
			return fmt.Errorf("query-migrate: %w", err)
		}
		switch st.Status {
		case "completed":
			return nil
		case "failed", "cancelled":
			return fmt.Errorf("migration %s: %s", st.Status, st.ErrorDesc)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.exited:
			return m.exitError()
		case <-time.After(time.Millisecond):
		}
	}
}

// Cont resumes a paused guest.
func (m *Machine) Cont(ctx context.Context) error {
	if _, err := m.qmp.Execute(ctx, "cont", nil); err != nil {
		return fmt.Errorf("vmm: cont %s: %w", m.cfg.Name, err)
	}
	return nil
}
