// PM2: three Tandem processes on ports 3001-3003 acting as one cluster
// (Redis + MongoDB), behind the repository's nginx.conf.
//   cargo build --release && pm2 start ecosystem.config.js
// Settings come from the environment (or edit them here); every process
// must share REDIS_URL, MONGODB_URI, JWT_SECRET, TURN_SECRET and UPLOAD_DIR.
const path = require('path');

const shared = {
  HOST: '127.0.0.1',
  TANDEM_ENV: process.env.TANDEM_ENV || 'production',
  REDIS_URL: process.env.REDIS_URL || 'redis://127.0.0.1:6379',
  MONGODB_URI: process.env.MONGODB_URI || 'mongodb://127.0.0.1:27017/tandem',
  JWT_SECRET: process.env.JWT_SECRET,
  TURN_SECRET: process.env.TURN_SECRET,
  UPLOAD_DIR: process.env.UPLOAD_DIR || path.join(__dirname, 'uploads'),
  LOG_DIR: process.env.LOG_DIR || path.join(__dirname, 'logs'),
  TRUST_PROXY: 'true',
};

const ports = [3001, 3002, 3003];

module.exports = {
  apps: ports.map((port, i) => ({
    name: `tandem-${port}`,
    script: process.env.TANDEM_BIN || path.join(__dirname, 'target', 'release', 'tandem'),
    interpreter: 'none',
    exec_mode: 'fork',
    autorestart: true,
    kill_timeout: 12000,
    max_memory_restart: '1G',
    env: {
      ...shared,
      PORT: String(port),
      DATA_DIR: path.join(process.env.DATA_DIR || path.join(__dirname, 'data'), String(port)),
      // Each process runs its own TURN port; the shared secret makes any
      // process's credentials valid on all of them.
      TURN_PORT: String(3478 + i),
      // Group-call media: one UDP port per process (3479, the default,
      // is the second process's TURN port here).
      SFU_UDP_PORT: String(3490 + i),
      TURN_MIN_PORT: String(49152 + i * 5000),
      TURN_MAX_PORT: String(49152 + i * 5000 + 4999),
    },
  })),
};
