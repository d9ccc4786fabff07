/**
 * The connection state machine alone: every step is a pure function of (phase, event), so the
 * lifecycle rules are checked here without a socket.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as CloseReason from "../../src/broker/CloseReason.ts"
import * as ConnectionPhase from "../../src/broker/ConnectionPhase.ts"
import { ProtocolViolation } from "../../src/broker/ProtocolViolation.ts"
import { ReasonCode } from "../../src/protocol/ReasonCode.ts"

const { transition } = ConnectionPhase
type Phase = ConnectionPhase.Phase

/** Runs `events` from the start, collecting every action. */
const run = (...events: ReadonlyArray<ConnectionPhase.Event>) => {
  let phase: Phase = ConnectionPhase.awaitingConnect
  const actions: Array<ConnectionPhase.Action> = []
  for (const event of events) {
    const step = transition(phase, event)
    phase = step.phase
    actions.push(...step.actions)
  }
  return { phase, actions }
}

const accepted = (v5: boolean, problemInformation = true): ConnectionPhase.Event => ({ _tag: "ConnectAccepted", v5, problemInformation })
const requested = (reason: CloseReason.CloseReason): ConnectionPhase.Event => ({ _tag: "CloseRequested", reason })
const stopped = (reason: CloseReason.CloseReason): ConnectionPhase.Event => ({ _tag: "ReaderStopped", reason })
const violation = (code?: ReasonCode) =>
  ({ _tag: "Violation", violation: new ProtocolViolation({ reason: "bad", code }) }) as const satisfies CloseReason.CloseReason

describe("ConnectionPhase", () => {
  it("CONNECT received, then accepted: AwaitingConnect → Connecting → Live, with nothing to do", () => {
    expect(run(ConnectionPhase.connectReceived).phase._tag).toBe("Connecting")
    const { actions, phase } = run(ConnectionPhase.connectReceived, accepted(true, false))
    expect(phase).toEqual({ _tag: "Live", v5: true, problemInformation: false })
    expect(actions).toEqual([])
  })

  it("an acceptance without a CONNECT being checked, or a second CONNECT, changes nothing", () => {
    expect(run(accepted(true)).phase._tag).toBe("AwaitingConnect")
    expect(run(ConnectionPhase.connectReceived, accepted(false), ConnectionPhase.connectReceived).phase._tag).toBe("Live")
  })

  it("a close from outside stops the reader once; the DISCONNECT waits for the reader to have stopped", () => {
    const live = run(ConnectionPhase.connectReceived, accepted(true))
    const closing = transition(live.phase, requested(CloseReason.TakenOver))
    expect(closing.phase).toMatchObject({ _tag: "Closing", reason: CloseReason.TakenOver, from: { _tag: "Live" } })
    expect(closing.actions).toEqual([{ _tag: "StopReading" }])
    // a second request (the keepalive firing too) neither changes the reason nor stops again
    const again = transition(closing.phase, requested(CloseReason.KeepaliveExpired))
    expect(again).toEqual({ phase: closing.phase, actions: [] })
    // the reader ends interrupted (read as shutdown): the first reason is the one the client hears
    const end = transition(again.phase, stopped(CloseReason.BrokerShutdown))
    expect(end.actions).toEqual([{ _tag: "SendDisconnect", code: ReasonCode.SessionTakenOver, reasonString: undefined }])
  })

  it("a client's own DISCONNECT handled before a close request reached the reader still counts as the client leaving", () => {
    const { actions, phase } = run(
      ConnectionPhase.connectReceived,
      accepted(true),
      requested(CloseReason.TakenOver),
      stopped(CloseReason.clientDisconnect(0, undefined))
    )
    expect(phase).toMatchObject({ _tag: "Closing", reason: { _tag: "ClientDisconnect", withWill: false } })
    expect(actions).toEqual([{ _tag: "StopReading" }])
  })

  it("only a live MQTT 5 client is sent DISCONNECT, with the reason string only when it accepts problem information", () => {
    const v5 = run(ConnectionPhase.connectReceived, accepted(true), stopped(violation(ReasonCode.TopicAliasInvalid)))
    expect(v5.actions).toEqual([{ _tag: "SendDisconnect", code: 0x94, reasonString: "bad" }])
    const quiet = run(ConnectionPhase.connectReceived, accepted(true, false), stopped(violation()))
    expect(quiet.actions).toEqual([{ _tag: "SendDisconnect", code: 0x82, reasonString: undefined }])
    expect(run(ConnectionPhase.connectReceived, accepted(false), stopped(violation())).actions).toEqual([])
    // before CONNACK nothing is sent: the refusal (if any) was the CONNACK
    expect(run(ConnectionPhase.connectReceived, stopped(violation())).actions).toEqual([])
    expect(run(stopped(CloseReason.BrokerShutdown)).actions).toEqual([])
  })

  it("each reason a live MQTT 5 connection ends for maps to its DISCONNECT reason code, or to none", () => {
    const codeFor = (reason: CloseReason.CloseReason) => {
      const { actions } = run(ConnectionPhase.connectReceived, accepted(true), stopped(reason))
      return actions.length === 0 ? undefined : (actions[0] as { code: number }).code
    }
    expect(codeFor(CloseReason.BrokerShutdown)).toBe(0x8b)
    expect(codeFor(CloseReason.KeepaliveExpired)).toBe(0x8d)
    expect(codeFor(CloseReason.TakenOver)).toBe(0x8e)
    expect(codeFor({ _tag: "InternalError", cause: undefined as never })).toBe(0x83)
    expect(codeFor(CloseReason.clientDisconnect(4, undefined))).toBeUndefined()
    expect(codeFor({ _tag: "IoError", cause: undefined })).toBeUndefined()
  })

  it("deadline: the connect timeout until CONNACK, 1.5 × the keepalive once live, none without keepalive or once closing", () => {
    const { deadline } = ConnectionPhase
    const live = run(ConnectionPhase.connectReceived, accepted(false)).phase
    expect(deadline(ConnectionPhase.awaitingConnect, 1_000, 10_000, 5_000, 0)).toBe(11_000)
    expect(deadline(ConnectionPhase.connecting, 1_000, 10_000, 5_000, 0)).toBe(11_000)
    expect(deadline(live, 1_000, 10_000, 5_000, 2_000)).toBe(8_000)
    expect(deadline(live, 1_000, 10_000, 5_000, 0)).toBe(Infinity)
    const closing = transition(live, requested(CloseReason.KeepaliveExpired)).phase
    expect(deadline(closing, 1_000, 10_000, 5_000, 2_000)).toBe(Infinity)
    expect(ConnectionPhase.expiryReason(live)).toBe(CloseReason.KeepaliveExpired)
    expect(ConnectionPhase.expiryReason(ConnectionPhase.connecting)).toBe(CloseReason.ConnectTimeout)
  })

  it("property: over any sequence of events, the reader is stopped at most once, DISCONNECT is sent at most once per stop and only to a live MQTT 5 client, and a close reason, once set, changes only to the client's own DISCONNECT", () => {
    const reasons: ReadonlyArray<CloseReason.CloseReason> = [
      CloseReason.TakenOver,
      CloseReason.KeepaliveExpired,
      CloseReason.ConnectTimeout,
      CloseReason.BrokerShutdown,
      CloseReason.clientDisconnect(0, undefined),
      violation()
    ]
    const event = fc.oneof(
      fc.constant(ConnectionPhase.connectReceived),
      fc.boolean().map((v5) => accepted(v5)),
      fc.constantFrom(...reasons).map(requested),
      fc.constantFrom(...reasons).map(stopped)
    )
    fc.assert(
      fc.property(fc.array(event, { maxLength: 12 }), (events) => {
        let phase: Phase = ConnectionPhase.awaitingConnect
        let stops = 0
        for (const e of events) {
          const step = transition(phase, e)
          stops += step.actions.filter((a) => a._tag === "StopReading").length
          const disconnects = step.actions.filter((a) => a._tag === "SendDisconnect")
          if (disconnects.length > 0) {
            expect(disconnects).toHaveLength(1)
            expect(e._tag).toBe("ReaderStopped")
            const from = step.phase._tag === "Closing" ? step.phase.from : undefined
            expect(from).toMatchObject({ _tag: "Live", v5: true })
          }
          if (phase._tag === "Closing") {
            expect(step.phase._tag).toBe("Closing")
            const reason = (step.phase as ConnectionPhase.Closing).reason
            if (reason !== phase.reason) expect(reason._tag).toBe("ClientDisconnect")
          }
          phase = step.phase
        }
        expect(stops).toBeLessThanOrEqual(1)
      })
    )
  })
})
