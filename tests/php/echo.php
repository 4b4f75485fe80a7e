<?php
// The request as PHP sees it: every string in $_SERVER, $_GET, $_POST and the raw body length.
header('Content-Type: application/json');
$server = [];
foreach ($_SERVER as $k => $v) {
    if (is_string($v)) {
        $server[$k] = $v;
    }
}
echo json_encode([
    'server' => $server,
    'get' => $_GET,
    'post' => $_POST,
    'input_length' => strlen(file_get_contents('php://input')),
    'fpm' => getenv('DIRECTOR_TEST_FPM'),
]);
