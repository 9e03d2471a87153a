/*
 * Parquet modular encryption: master keys read from a key file (docs/adr/0014).
 *
 * The file named by the Hadoop setting "lakehouse.encryption.key.file" holds one master key
 * per line, "<key id>:<base64 of 16, 24 or 32 bytes>"; blank lines and lines starting with
 * '#' are ignored. Data keys are wrapped locally (AES-GCM) by parquet-hadoop's
 * LocalWrapKmsClient; this class only reads master keys. Key material never leaves the
 * process and is never logged; errors name the key id and the file, never a key.
 * A hospital KMS replaces this class by the setting security.encryption_kms_client_class.
 */
package lakehouse.kms;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.parquet.crypto.KeyAccessDeniedException;
import org.apache.parquet.crypto.keytools.LocalWrapKmsClient;

public final class LakehouseFileKms extends LocalWrapKmsClient {
  public static final String KEY_FILE = "lakehouse.encryption.key.file";

  private final Map<String, byte[]> masterKeys = new HashMap<>();

  @Override
  protected void initializeInternal() throws KeyAccessDeniedException {
    String file = hadoopConfiguration.getTrimmed(KEY_FILE);
    if (file == null || file.isEmpty()) {
      throw new KeyAccessDeniedException(
          "LH-ENC: no master key file: the Hadoop setting " + KEY_FILE + " is not set");
    }
    Path path = Paths.get(file);
    List<String> lines;
    try {
      lines = Files.readAllLines(path, StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new KeyAccessDeniedException(
          "LH-ENC: cannot read the master key file " + file + " (" + e.getClass().getSimpleName() + ")");
    }
    for (String line : lines) {
      String text = line.trim();
      if (text.isEmpty() || text.startsWith("#")) {
        continue;
      }
      int colon = text.indexOf(':');
      if (colon <= 0) {
        throw new KeyAccessDeniedException("LH-ENC: malformed line in the master key file " + file);
      }
      String id = text.substring(0, colon).trim();
      byte[] key;
      try {
        key = Base64.getDecoder().decode(text.substring(colon + 1).trim());
      } catch (IllegalArgumentException e) {
        throw new KeyAccessDeniedException("LH-ENC: master key " + id + " in " + file + " is not base64");
      }
      if (key.length != 16 && key.length != 24 && key.length != 32) {
        throw new KeyAccessDeniedException(
            "LH-ENC: master key " + id + " in " + file + " must be 16, 24 or 32 bytes");
      }
      masterKeys.put(id, key);
    }
  }

  @Override
  protected byte[] getMasterKeyFromServer(String keyIdentifier) throws KeyAccessDeniedException {
    byte[] key = masterKeys.get(keyIdentifier);
    if (key == null) {
      throw new KeyAccessDeniedException(
          "LH-ENC: master key " + keyIdentifier + " is not in the master key file");
    }
    return key;
  }
}
