<?php
// ?bytes=N (or ?mb=N): N bytes of the pattern byte i = i % 251, flushed in 64 KiB-ish blocks.
// &length=1 sends a Content-Length. &hold=/path: after the first block, wait (up to 20 s) until
// that file exists, so a test can see the first bytes arrive before the script is done.
header('Content-Type: application/octet-stream');
header('X-Fpm: ' . getenv('DIRECTOR_TEST_FPM'));
$total = isset($_GET['mb']) ? (int) $_GET['mb'] * 1048576 : (int) ($_GET['bytes'] ?? 0);
if (!empty($_GET['length'])) {
    header('Content-Length: ' . $total);
}
$cycle = '';
for ($i = 0; $i < 251; $i++) {
    $cycle .= chr($i);
}
$block = str_repeat($cycle, 261); // 65511 bytes: every block starts at pattern offset 0
$hold = $_GET['hold'] ?? '';
$sent = 0;
while ($sent < $total) {
    $n = min(strlen($block), $total - $sent);
    echo $n === strlen($block) ? $block : substr($block, 0, $n);
    flush();
    $sent += $n;
    if ($hold !== '') {
        for ($waited = 0; $waited < 4000 && !file_exists($hold); $waited++) {
            clearstatcache();
            usleep(5000);
        }
        $hold = '';
    }
}
