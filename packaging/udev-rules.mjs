/**
 * The udev rules of the Debian package (issue 12), made from the USB fingerprint table of
 * drivers/discovery/usb-fingerprints.ts, so a device the agent recognises also gets a stable
 * name and permissions for the `pos-agent` user (postinst puts it in dialout and plugdev):
 *
 * | role | subsystem | group | stable names |
 * |------|-----------|-------|--------------|
 * | pinpad | tty | dialout | /dev/pos/pinpad (the last one plugged in), /dev/pos/pinpad-VENDOR-SERIAL |
 * | hid-msr, wedge | hidraw | plugdev | /dev/pos/reader-VENDOR-SERIAL (hid:// paths are matched by id, the name is for people) |
 * | usb-serial-adapter | tty | dialout | none: the device behind it is unknown; use /dev/serial/by-id |
 *
 * SERIAL is the USB serial number (`$attr{serial}` of the USB device, found through the ATTRS
 * match). Syntax: udev(7).
 */

const hex4 = (n) => n.toString(16).padStart(4, '0');
const slug = (text) =>
  text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');

/**
 * @param {ReadonlyArray<{vendorId: number, productId?: number, vendor: string, name: string, role: string}>} fingerprints
 * @returns {string} the rules file text
 */
export function udevRules(fingerprints) {
  const lines = [
    '# udev rules of pos-agent, made from drivers/discovery/usb-fingerprints.ts by',
    '# packaging/build-deb.mjs. Reload after a change: udevadm control --reload-rules && udevadm trigger',
    '',
  ];
  for (const f of fingerprints) {
    const match = `ATTRS{idVendor}=="${hex4(f.vendorId)}"${f.productId === undefined ? '' : `, ATTRS{idProduct}=="${hex4(f.productId)}"`}`;
    const vendor = slug(f.vendor);
    lines.push(`# ${f.name} (${f.role})`);
    if (f.role === 'pinpad')
      lines.push(
        `SUBSYSTEM=="tty", ${match}, GROUP="dialout", MODE="0660", SYMLINK+="pos/pinpad", SYMLINK+="pos/pinpad-${vendor}-$attr{serial}"`,
      );
    else if (f.role === 'hid-msr' || f.role === 'wedge')
      lines.push(
        `SUBSYSTEM=="hidraw", ${match}, GROUP="plugdev", MODE="0660", SYMLINK+="pos/reader-${vendor}-$attr{serial}"`,
      );
    else if (f.role === 'serial-reader')
      lines.push(
        `SUBSYSTEM=="tty", ${match}, GROUP="dialout", MODE="0660", SYMLINK+="pos/reader-${vendor}-$attr{serial}"`,
      );
    else lines.push(`SUBSYSTEM=="tty", ${match}, GROUP="dialout", MODE="0660"`);
  }
  return `${lines.join('\n')}\n`;
}
