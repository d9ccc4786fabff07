/**
 * effect-mqtt-broker: an MQTT 3.1.1 broker core on Effect 4 with pluggable session state.
 * Public API only: re-exports, no logic.
 */
export * as AclAuthorizer from "./auth/AclAuthorizer.ts"
export * as AclFile from "./auth/AclFile.ts"
export * as Authenticator from "./auth/Authenticator.ts"
export * as Authorizer from "./auth/Authorizer.ts"
export * as Broker from "./broker/Broker.ts"
export * as BrokerConfig from "./config/BrokerConfig.ts"
export { ConfigError } from "./config/ConfigError.ts"
export * as ListenerError from "./transport/ListenerError.ts"
export * as Message from "./session/Message.ts"
export { MessageQueue } from "./session/MessageQueue.ts"
export * as MemorySessionStateProvider from "./session/MemorySessionStateProvider.ts"
export * as PasswordAuthenticator from "./auth/PasswordAuthenticator.ts"
export * as PasswordFile from "./auth/PasswordFile.ts"
export * as Plugin from "./plugin/Plugin.ts"
export { SessionPlugin } from "./plugin/SessionPlugin.ts"
export * as SessionState from "./session/SessionState.ts"
export { SessionStateProvider, SessionStoreError, type SessionUpdate } from "./session/SessionStateProvider.ts"
export * as Sessions from "./session/Sessions.ts"
export * as Transitions from "./session/Transitions.ts"
export * as Topic from "./protocol/Topic.ts"
