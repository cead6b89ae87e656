package services

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	sd "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"

	"github.com/nodereset/nodereset/pkg/host"
)

// ConnectSystemd connects to systemd's private socket under the host root
// when systemd runs there (sd_booted: /run/systemd/system is a directory);
// it returns nil, nil when it does not.
func ConnectSystemd(ctx context.Context, h *host.Host) (Manager, error) {
	st, err := os.Stat(h.Path("/run/systemd/system"))
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !st.IsDir()) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sock := h.Path("/run/systemd/private")
	conn, err := sd.NewConnection(func() (*godbus.Conn, error) {
		c, err := godbus.Dial("unix:path="+sock, godbus.WithContext(ctx))
		if err != nil {
			return nil, err
		}
		// Direct connection to systemd: EXTERNAL auth by uid, no Hello.
		if err := c.Auth([]godbus.Auth{godbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	})
	if err != nil {
		return nil, fmt.Errorf("connect to systemd at %s: %w", sock, err)
	}
	return &systemd{c: conn}, nil
}

type systemd struct{ c *sd.Conn }

func (s *systemd) ActiveState(ctx context.Context, unit string) (string, error) {
	p, err := s.c.GetUnitPropertyContext(ctx, unit, "ActiveState")
	if err != nil {
		return "", err
	}
	v, _ := p.Value.Value().(string)
	return v, nil
}

func (s *systemd) Stop(ctx context.Context, unit string) error {
	ch := make(chan string, 1)
	if _, err := s.c.StopUnitContext(ctx, unit, "replace", ch); err != nil {
		return err
	}
	select {
	case res := <-ch:
		if res != "done" {
			return fmt.Errorf("stop job %s", res)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *systemd) Disable(ctx context.Context, unit string) error {
	if _, err := s.c.DisableUnitFilesContext(ctx, []string{unit}, false); err != nil {
		return err
	}
	return s.c.ReloadContext(ctx)
}

func (s *systemd) Close() { s.c.Close() }
