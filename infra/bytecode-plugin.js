'use strict';

// Adds CPython 3.12 bytecode to the packaged zip once serverless-python-requirements has put the
// requirements in it (this plugin is listed after that one, so its hook runs later). The work is
// done by infra/package_bytecode.py, which explains the choices; packaging fails if it fails.
const path = require('path');
const { spawnSync } = require('child_process');

class LambdaBytecode {
  constructor(serverless) {
    this.serverless = serverless;
    this.hooks = {
      // Fail before the requirements are fetched when no CPython 3.12 exists, not after.
      'before:package:createDeploymentArtifacts': () =>
        this.run(['--which'], 'Finding a CPython 3.12', ['ignore', 'ignore', 'inherit']),
      'after:package:createDeploymentArtifacts': () =>
        this.run([this.artifact()], 'Adding bytecode', 'inherit'),
    };
  }

  artifact() {
    const service = this.serverless.service;
    return (
      service.package.artifact ||
      path.join(this.serverless.serviceDir, '.serverless', `${service.service}.zip`)
    );
  }

  run(args, what, stdio) {
    const script = path.join(__dirname, 'package_bytecode.py');
    // python3: the interpreter serverless-python-requirements runs too (the Makefile puts the venv's first).
    const result = spawnSync('python3', [script, ...args], { stdio });
    if (result.error || result.status !== 0) {
      const reason = result.error ? result.error.message : `exit status ${result.status}`;
      throw new this.serverless.classes.Error(`${what} for the Lambda package failed (${reason})`);
    }
  }
}

module.exports = LambdaBytecode;
