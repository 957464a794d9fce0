#!/usr/bin/env node
// The installed entry point runs the compiled CLI (npm run build, or the setup script, makes dist/).
import '../dist/cli/wirelane.js';
