/**
 * Redis Cluster routing: the hash slot of a key (CRC16 XMODEM of the key, or
 * of its hash tag, modulo 16384), and grouping of keys by node and slot.
 *
 * Not `cluster-key-slot` (ioredis's own): its 1.1.2 disagrees with
 * `CLUSTER KEYSLOT` on an empty hash tag followed by `}` (`{}}`), which the
 * property test against a real cluster finds; ours is checked against it.
 *
 * @internal
 */

const table = (() => {
  const t = new Uint16Array(256)
  for (let i = 0; i < 256; i++) {
    let crc = i << 8
    for (let j = 0; j < 8; j++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
    t[i] = crc
  }
  return t
})()

const crc16 = (bytes: Uint8Array): number => {
  let crc = 0
  for (let i = 0; i < bytes.length; i++) {
    crc = ((crc << 8) & 0xffff) ^ table[((crc >> 8) ^ bytes[i]!) & 0xff]!
  }
  return crc
}

const encoder = new TextEncoder()

/** The hash slot of a key. */
export const slotOf = (key: string): number => {
  let hashed = key
  const open = key.indexOf("{")
  if (open !== -1) {
    const close = key.indexOf("}", open + 1)
    if (close > open + 1) hashed = key.slice(open + 1, close)
  }
  // Fast path for ASCII keys (the usual case: keys are escaped).
  let ascii = true
  for (let i = 0; i < hashed.length; i++) {
    if (hashed.charCodeAt(i) > 0x7f) {
      ascii = false
      break
    }
  }
  if (ascii) {
    let crc = 0
    for (let i = 0; i < hashed.length; i++) {
      crc = ((crc << 8) & 0xffff) ^ table[((crc >> 8) ^ hashed.charCodeAt(i)) & 0xff]!
    }
    return crc & 16383
  }
  return crc16(encoder.encode(hashed)) & 16383
}
