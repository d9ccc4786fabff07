/** What every plugin says about itself; the broker logs it at start. */
export interface PluginDescriptor {
  readonly name: string
  readonly version: string
  readonly vendor: string
}

/** "name version (vendor)", as the broker logs it. */
export const describe = (plugin: PluginDescriptor): string => `${plugin.name} ${plugin.version} (${plugin.vendor})`
