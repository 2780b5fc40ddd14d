// The official CloudEvents SDK (npm cloudevents) as an independent judge of the envelope step.
//   node cloudevents.js check FILE   every line of FILE is a structured-mode event the SDK
//                                    accepts (strict), with no control character or
//                                    noncharacter in a string attribute (the spec forbids them;
//                                    the SDK does not look); exit 1 naming each line that fails
//   node cloudevents.js make         events the SDK itself writes, one per line
'use strict';
const fs = require('fs');
const { CloudEvent, HTTP } = require('cloudevents');

const forbidden = /[\u0000-\u001f\u007f-\u009f\ufdd0-\ufdef\ufffe\uffff]/;

function check(file) {
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0);
  let failed = 0;
  lines.forEach((line, i) => {
    try {
      const event = new CloudEvent(JSON.parse(line));
      event.validate();
      for (const [name, value] of Object.entries(JSON.parse(line))) {
        if (name !== 'data' && typeof value === 'string' && forbidden.test(value))
          throw new Error(`${name} holds a character CloudEvents forbids`);
      }
    } catch (e) {
      failed++;
      console.log(`line ${i + 1}: ${e.message} ${JSON.stringify(e.errors || '')}: ${line}`);
    }
  });
  console.log(`${lines.length - failed} of ${lines.length} events accepted`);
  process.exit(failed || lines.length === 0 ? 1 : 0);
}

function make() {
  const events = [
    new CloudEvent({ id: 'bin-1', source: '/edge/site-7', type: 'com.example.blob',
                     datacontenttype: 'application/octet-stream', data: new Uint8Array([0xff, 0x00, 0xfe, 0x41]),
                     tenant: 'acme', seq: 42, sampled: true }),
    new CloudEvent({ id: 'json-1', source: 'urn:example:orders', type: 'com.example.order.created',
                     subject: 'order/7', time: '2026-12-07T10:00:00.000Z', dataschema: 'https://example.com/order.json',
                     data: { id: 7, total: 12.5, tags: ['a'] }, region: 'eu' }),
    new CloudEvent({ id: 'text-1', source: '/edge/site-7', type: 'com.example.note', datacontenttype: 'text/plain',
                     data: 'hello, edge' }),
  ];
  for (const e of events) console.log(HTTP.structured(e).body);
}

if (process.argv[2] === 'check' && process.argv[3]) check(process.argv[3]);
else if (process.argv[2] === 'make') make();
else {
  console.error('usage: node cloudevents.js check FILE | make');
  process.exit(2);
}
