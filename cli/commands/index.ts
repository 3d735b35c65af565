// Every subcommand, registered on import. Add new ones (e.g. export-onnx) with one line here.
import './generate.ts';
import './score.ts';
import './passkey.ts';
import './random-checkpoint.ts';
import './export-onnx.ts';
import './bench.ts';
import './report.ts';
