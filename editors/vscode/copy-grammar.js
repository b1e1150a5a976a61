// Copies the repository's TextMate grammar (grammar/ad.tmLanguage.json, the one source of
// truth) into this extension as syntaxes/ad.tmLanguage.json, which package.json names: a
// packaged extension cannot reach files outside its directory. `npm install` runs this
// (postinstall), and so does `vsce package` (vscode:prepublish). An argument names
// another destination (tests/editors.rs uses one).
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const source = path.join(__dirname, '..', '..', 'grammar', 'ad.tmLanguage.json');
const target = process.argv[2] || path.join(__dirname, 'syntaxes', 'ad.tmLanguage.json');
fs.mkdirSync(path.dirname(target), { recursive: true });
fs.copyFileSync(source, target);
