// The options every runner device check takes: the model folder, the engine kind and where the report goes.
export function deviceCheckOptions(defaultEngine: string) {
  return {
    model: { type: 'string', default: 'models/deciserve-mamba' },
    engine: { type: 'string', default: defaultEngine },
    out: { type: 'string', default: process.env.OUT ?? '.device-out' },
  } as const;
}
