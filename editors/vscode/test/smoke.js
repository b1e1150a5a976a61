// A smoke test of extension.js outside VS Code: `vscode` and `vscode-languageclient/node`
// are replaced by recording stubs, so it needs neither VS Code nor `npm install`.
// Run with `node test/smoke.js` (tests/editors.rs does, when node is installed); it exits
// non-zero on the first failed check.
'use strict';

const assert = require('node:assert/strict');
const Module = require('node:module');
const path = require('node:path');

const settings = {};
const errors = [];
const commands = {};
let configListener;
let failStart = false;

const vscode = {
  workspace: {
    getConfiguration(section) {
      assert.equal(section, 'ad');
      return { get: (key) => settings[key] };
    },
    onDidChangeConfiguration(listener) {
      configListener = listener;
      return { dispose() {} };
    },
  },
  window: {
    showErrorMessage(message) {
      errors.push(message);
    },
  },
  commands: {
    registerCommand(name, handler) {
      commands[name] = handler;
      return { dispose() {} };
    },
  },
};

const clients = [];
class LanguageClient {
  constructor(id, name, serverOptions, clientOptions) {
    Object.assign(this, { id, name, serverOptions, clientOptions, started: false, stopped: false });
    clients.push(this);
  }
  async start() {
    if (failStart) {
      throw new Error('spawn ad ENOENT');
    }
    this.started = true;
  }
  isRunning() {
    return this.started && !this.stopped;
  }
  async stop() {
    this.stopped = true;
  }
}
const languageClient = { LanguageClient, TransportKind: { stdio: 0, ipc: 1, pipe: 2, socket: 3 } };

const load = Module._load;
Module._load = function (request, parent, isMain) {
  if (request === 'vscode') return vscode;
  if (request === 'vscode-languageclient/node') return languageClient;
  return load.call(this, request, parent, isMain);
};

const extension = require(path.join(__dirname, '..', 'extension.js'));

async function main() {
  const context = { subscriptions: [] };
  await extension.activate(context);
  assert.equal(clients.length, 1, 'activate starts one client');
  const first = clients[0];
  assert.equal(first.id, 'ad', 'the client id is `ad` (so `ad.trace.server` applies)');
  assert.deepEqual(first.serverOptions, { command: 'ad', args: ['lsp'], transport: 0 });
  assert.deepEqual(
    first.clientOptions.documentSelector.map((s) => s.language),
    ['ad', 'ad'],
    'the client serves the `ad` language',
  );
  assert.ok(first.started);
  assert.equal(context.subscriptions.length, 2);

  // Changing the setting restarts the server with the new program.
  settings['server.path'] = ' /opt/ad/bin/ad ';
  await configListener({ affectsConfiguration: (s) => s === 'ad.server.path' });
  assert.equal(clients.length, 2);
  assert.ok(first.stopped, 'the old server is stopped');
  assert.equal(clients[1].serverOptions.command, '/opt/ad/bin/ad');
  assert.ok(clients[1].started);

  // Other settings leave it alone.
  await configListener({ affectsConfiguration: () => false });
  assert.equal(clients.length, 2);

  // An empty setting means the default.
  settings['server.path'] = '';
  assert.equal(extension.serverOptions().command, 'ad');

  // A server that cannot start is reported, naming the setting.
  failStart = true;
  settings['server.path'] = 'missing-ad';
  await commands['ad.restartServer']();
  assert.equal(errors.length, 1);
  assert.match(errors[0], /missing-ad lsp/);
  assert.match(errors[0], /ad\.server\.path/);

  failStart = false;
  await extension.deactivate();
  assert.ok(clients.every((c) => !c.isRunning()), 'deactivate stops the server');
  console.log('extension.js smoke test: ok');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
