#!/usr/bin/env node
// validate-spec.js SPEC - validates an OpenAPI document with
// @apidevtools/swagger-parser (structure against the OpenAPI 3.0 schema,
// every $ref resolves). Exit 0 when valid, 1 with the reasons otherwise.
"use strict";
const SwaggerParser = require("@apidevtools/swagger-parser");

SwaggerParser.validate(process.argv[2]).then(
  (api) => {
    console.log(`openapi: ${process.argv[2]} is valid (${api.info.title} ${api.info.version})`);
  },
  (err) => {
    console.error(`openapi: ${process.argv[2]} is INVALID: ${err.message}`);
    if (err.details) console.error(JSON.stringify(err.details, null, 1).slice(0, 4000));
    process.exit(1);
  }
);
