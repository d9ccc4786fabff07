/**
 * Refusing a TCP connection at accept, from its peer address alone. Node's `net.Server` asks its
 * `blockList` about every accepted connection before it makes a `net.Socket` of it, and closes the
 * handle of a blocked one right there; a BlockList whose `check` asks a function of ours turns that
 * into an admission hook. A refused connection then costs no socket object, no TLS handshake, no
 * wire and no fiber — under a flood of thousands of connections a second, that work and the
 * garbage it leaves are what delay the clients already connected.
 */
import * as Net from "node:net"

/** Whether a connection from this IP address (as Node reports it, e.g. `::ffff:127.0.0.1`) is served. */
export type Admit = (address: string) => boolean

class AdmissionList extends Net.BlockList {
  private readonly admit: Admit

  constructor(admit: Admit) {
    super()
    this.admit = admit
  }

  /** Called by `net.Server` for each accepted connection: `true` closes it unserved. */
  override check(address: string | Net.SocketAddress): boolean {
    return !this.admit(typeof address === "string" ? address : address.address)
  }
}

/** The `blockList` server option that refuses every connection `admit` says no to. */
export const blockList = (admit: Admit): Net.BlockList => new AdmissionList(admit)

/** Server options carrying `admit`, or none when every connection is admitted. */
export const serverOptions = (admit: Admit | undefined): { readonly blockList?: Net.BlockList } =>
  admit === undefined ? {} : { blockList: blockList(admit) }
