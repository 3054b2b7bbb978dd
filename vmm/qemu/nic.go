package qemu

import (
	"context"
	"fmt"
)

// NICMAC returns the MAC address the VM's card of nic:index has, as QEMU
// made it (qom-get of the device's mac property).
func (c *Client) NICMAC(ctx context.Context, index int) (string, error) {
	var mac string
	path := fmt.Sprintf("/machine/peripheral/nic%d", index)
	if err := c.run(ctx, &mac, "qom-get", map[string]string{"path": path, "property": "mac"}); err != nil {
		return "", fmt.Errorf("nic:%d: %w", index, err)
	}
	return mac, nil
}
