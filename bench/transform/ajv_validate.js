// The peer of edgeflow's validate step in bench/transform: ajv (the JSON Schema validator most of
// the JavaScript world uses) on the same events and schema, one JSON.parse and one validate per
// line, streamed. Prints how many lines were valid and invalid.
'use strict';
const fs = require('fs');
const Ajv = require('ajv');

const [schemaPath, inputPath] = process.argv.slice(2);
const validate = new Ajv({allErrors: false}).compile(JSON.parse(fs.readFileSync(schemaPath, 'utf8')));
let valid = 0, invalid = 0, rest = '';
const stream = fs.createReadStream(inputPath, {encoding: 'utf8', highWaterMark: 1 << 20});
stream.on('data', (chunk) => {
  const lines = (rest + chunk).split('\n');
  rest = lines.pop();
  for (const line of lines) {
    if (line.length === 0) continue;
    if (validate(JSON.parse(line))) valid++;
    else invalid++;
  }
});
stream.on('end', () => {
  if (rest.length > 0) (validate(JSON.parse(rest)) ? valid++ : invalid++);
  console.log(`valid=${valid} invalid=${invalid}`);
});
