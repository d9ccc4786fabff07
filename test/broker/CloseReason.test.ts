/**
 * One reason per closed connection: how the reader's exit becomes a `CloseReason`, and what each
 * reason means for the will and the log.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Exit } from "effect"
import * as Socket from "effect/socket/Socket"
import { AuthenticationRefused, BadCredentials } from "../../src/auth/Authenticator.ts"
import * as CloseReason from "../../src/broker/CloseReason.ts"
import { ConnectRefused } from "../../src/broker/ConnectRefusal.ts"
import { ProtocolViolation } from "../../src/broker/ProtocolViolation.ts"
import { DecodeError } from "../../src/protocol/DecodeError.ts"
import { SessionStoreError } from "../../src/session/SessionStateProvider.ts"

describe("CloseReason", () => {
  it("the reader's own reason (a DISCONNECT) is the reason", () => {
    const reason = CloseReason.clientDisconnect(0x04, 30)
    expect(CloseReason.ofExit(Exit.succeed(reason))).toBe(reason)
    expect(reason).toEqual({ _tag: "ClientDisconnect", withWill: true, expiryInterval: 30 })
  })

  it("each failure of the reader maps to its reason; a decode failure keeps its reason code and text", () => {
    const violation = new ProtocolViolation({ reason: "bad alias", code: 0x94 })
    expect(CloseReason.ofExit(Exit.fail(violation))).toEqual({ _tag: "Violation", violation })
    const decoded = CloseReason.ofExit(Exit.fail(new DecodeError({ reason: { _tag: "TooLarge", size: 9, limit: 5 } })))
    expect(decoded._tag === "Violation" && [decoded.violation.reasonCode, decoded.violation.reason])
      .toEqual([0x95, "packet of 9 bytes exceeds the maximum packet size 5"])
    const refused = new ConnectRefused({ reason: { _tag: "ServerFull", limit: 1, clientId: "c" } })
    expect(CloseReason.ofExit(Exit.fail(refused))).toEqual({ _tag: "Refused", refused })
    const socket = new Socket.SocketError({ reason: new Socket.SocketCloseError({ code: 1006 }) })
    expect(CloseReason.ofExit(Exit.fail(socket))._tag).toBe("IoError")
    const store = new SessionStoreError({ operation: "modify", clientId: "c", cause: new Error("disk full") })
    expect(CloseReason.ofExit(Exit.fail(store))).toEqual({ _tag: "StoreFailed", error: store })
  })

  it("a defect is an internal error; an interruption with no reason of the reader's own is the broker stopping", () => {
    expect(CloseReason.ofExit(Exit.die(new Error("bug")))._tag).toBe("InternalError")
    expect(CloseReason.ofExit(Exit.failCause(Cause.interrupt()))).toBe(CloseReason.BrokerShutdown)
  })

  it("only a DISCONNECT without 0x04 discards the will", () => {
    expect(CloseReason.isGraceful(CloseReason.clientDisconnect(undefined, undefined))).toBe(true)
    expect(CloseReason.isGraceful(CloseReason.clientDisconnect(0x04, undefined))).toBe(false)
    expect(CloseReason.isGraceful(CloseReason.TakenOver)).toBe(false)
    expect(CloseReason.isGraceful(CloseReason.KeepaliveExpired)).toBe(false)
  })

  it("the close line: warnings for what the client did wrong, debug for a lost socket and a flood's later refusals, none for a normal end", () => {
    const refusal = (report: number | undefined): CloseReason.CloseReason => ({
      _tag: "Refused",
      refused: new ConnectRefused({ reason: { _tag: "RateExceeded", address: "a", limit: 2, report } })
    })
    expect(CloseReason.closeLine(CloseReason.KeepaliveExpired)).toEqual({ level: "Warn", message: "closing connection: keepalive expired" })
    expect(CloseReason.closeLine(CloseReason.ConnectTimeout)?.message).toBe("closing connection: no CONNECT within the connect timeout")
    expect(CloseReason.closeLine(refusal(3))?.level).toBe("Warn")
    expect(CloseReason.closeLine(refusal(undefined))?.level).toBe("Debug")
    const authRefused = new AuthenticationRefused({ reason: new BadCredentials() })
    expect(CloseReason.closeLine({ _tag: "Refused", refused: new ConnectRefused({ reason: { _tag: "NotAuthenticated", refused: authRefused, username: "u", clientId: "c" } }) })?.message)
      .toContain("(user \"u\", client id \"c\")")
    expect(CloseReason.closeLine({ _tag: "IoError", cause: undefined })?.level).toBe("Debug")
    expect(CloseReason.closeLine(CloseReason.clientDisconnect(0, undefined))).toBeUndefined()
    expect(CloseReason.closeLine(CloseReason.BrokerShutdown)).toBeUndefined()
  })
})
