// Mocha's spec reporter plus one closing line that CI reads:
// "tests: N passed, M failed". Mocha's own summary is not parsed by CI.
'use strict';
const Mocha = require('mocha');
const { Spec } = Mocha.reporters;
const { EVENT_RUN_END } = Mocha.Runner.constants;

class SummaryReporter extends Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once(EVENT_RUN_END, () => {
      const s = runner.stats || { passes: 0, failures: 0 };
      // Printed after spec's epilogue so it is the last line of the run.
      process.nextTick(() => process.stdout.write(`tests: ${s.passes} passed, ${s.failures} failed\n`));
    });
  }
}
module.exports = SummaryReporter;
