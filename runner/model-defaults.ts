// The runner reads a model's serving defaults from its folder (mamba/model-defaults.ts holds the format).
export { readModelDefaults } from '../mamba/checkpoint.ts';
export type { ModelDefaults } from '../mamba/model-defaults.ts';
