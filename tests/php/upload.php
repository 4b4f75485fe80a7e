<?php
// Consumes the request body; answers its size and MD5 as JSON.
header('Content-Type: application/json');
$in = fopen('php://input', 'rb');
$ctx = hash_init('md5');
$size = 0;
while (!feof($in)) {
    $data = fread($in, 65536);
    if ($data === false) {
        break;
    }
    $size += strlen($data);
    hash_update($ctx, $data);
}
echo json_encode(['size' => $size, 'md5' => hash_final($ctx), 'method' => $_SERVER['REQUEST_METHOD'],
    'content_length' => $_SERVER['CONTENT_LENGTH'] ?? null]);
