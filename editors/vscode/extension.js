// The AD extension's client: starts `ad lsp` (the program named by the `ad.server.path`
// setting, `ad` on PATH by default) for `.ad` files and restarts it when the setting
// changes. Everything the server offers (diagnostics, hover, completion, definition,
// signature help, formatting) comes through vscode-languageclient; this file only says how
// to start it.
'use strict';

const vscode = require('vscode');
const { LanguageClient, TransportKind } = require('vscode-languageclient/node');

/** @type {LanguageClient | undefined} */
let client;

/** How to start the server: `<ad.server.path> lsp`, talking over stdio. */
function serverOptions() {
  const configured = vscode.workspace.getConfiguration('ad').get('server.path');
  const command = typeof configured === 'string' && configured.trim() !== '' ? configured.trim() : 'ad';
  return { command, args: ['lsp'], transport: TransportKind.stdio };
}

function clientOptions() {
  return {
    documentSelector: [
      { scheme: 'file', language: 'ad' },
      { scheme: 'untitled', language: 'ad' },
    ],
  };
}

async function start() {
  client = new LanguageClient('ad', 'AD language server', serverOptions(), clientOptions());
  try {
    await client.start();
  } catch (err) {
    const command = serverOptions().command;
    vscode.window.showErrorMessage(
      `AD: could not start the language server \`${command} lsp\` (${err && err.message ? err.message : err}). ` +
        'Install `ad` on your PATH or set `ad.server.path`.',
    );
  }
}

async function stop() {
  if (client) {
    const old = client;
    client = undefined;
    if (old.isRunning()) {
      await old.stop();
    }
  }
}

/** @param {import('vscode').ExtensionContext} context */
async function activate(context) {
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (event.affectsConfiguration('ad.server.path')) {
        await stop();
        await start();
      }
    }),
    vscode.commands.registerCommand('ad.restartServer', async () => {
      await stop();
      await start();
    }),
  );
  await start();
}

function deactivate() {
  return stop();
}

module.exports = { activate, deactivate, serverOptions, clientOptions };
