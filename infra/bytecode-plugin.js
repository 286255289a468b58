'use strict';

// Adds CPython 3.12 bytecode to the packaged zip once serverless-python-requirements has put the
// requirements in it (this plugin is listed after that one, so its hook runs later). The work is
// done by infra/package_bytecode.py, which explains the choices; packaging fails if it fails.
const path = require('path');
const { spawnSync } = require('child_process');

class LambdaBytecode {
  constructor(serverless) {
    this.serverless = serverless;
    this.hooks = { 'after:package:createDeploymentArtifacts': () => this.compile() };
  }

  compile() {
    const service = this.serverless.service;
    const artifact =
      service.package.artifact ||
      path.join(this.serverless.serviceDir, '.serverless', `${service.service}.zip`);
    const script = path.join(__dirname, 'package_bytecode.py');
    // python3: the interpreter serverless-python-requirements runs too (the Makefile puts the venv's first).
    const result = spawnSync('python3', [script, artifact], { stdio: 'inherit' });
    if (result.error || result.status !== 0) {
      const reason = result.error ? result.error.message : `exit status ${result.status}`;
      throw new this.serverless.classes.Error(`Adding bytecode to ${artifact} failed (${reason})`);
    }
  }
}

module.exports = LambdaBytecode;
