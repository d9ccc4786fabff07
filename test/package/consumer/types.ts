// Type-checked in a temporary app against the installed package's .d.ts (test/package): the
// package's types must be the real ones, not `any` from a declaration that did not resolve.
import { Layer } from "effect"
import { Broker, SessionPlugin } from "effect-mqtt-broker"

export const BrokerLive = Broker.layer({ port: 0 }).pipe(Layer.provide(SessionPlugin.layer))

// @ts-expect-error a Layer is not a number: unused (an error) if the package's types were `any`
export const notANumber: number = BrokerLive
