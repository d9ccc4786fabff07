import * as MemorySessionStateProvider from "../../src/session/MemorySessionStateProvider.ts"
import { providerConformance } from "./SessionModel.ts"

providerConformance("Memory", MemorySessionStateProvider.layer)
